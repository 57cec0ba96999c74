// The identifier rules, stated once: a topic segment (device, site, type, project and fleet ids:
// docs/architecture.md, Where each rule lives: `[a-z0-9][a-z0-9-]{0,62}`) and a subject
// (participant) code. The registry, the schema
// loader and the simulators' fleets all check ids here, so that a fleet can never produce an id the
// registry refuses. Pure and imports nothing, so every layer and the simulators may use it.

/** A topic segment is at most this long: it is also an MQTT client id (aedes `maxClientsIdLength`). */
export const SEGMENT_MAX_LENGTH = 63;
/** One segment, unanchored: for building topic patterns. */
export const SEGMENT_SOURCE = `[a-z0-9][a-z0-9-]{0,${SEGMENT_MAX_LENGTH - 1}}`;
export const SEGMENT_PATTERN = `^${SEGMENT_SOURCE}$`;
export const SEGMENT_RE = new RegExp(SEGMENT_PATTERN);
/** Says what a segment may be, for messages that name the offending value. */
export const SEGMENT_RULE = `1–${SEGMENT_MAX_LENGTH} characters of a–z, 0–9 and "-", starting with a letter or digit`;

/** A participant code: letters, digits, "_" and "-"; never a name (docs/architecture.md, Where each
 * rule lives). */
export const SUBJECT_MAX_LENGTH = 64;
export const SUBJECT_PATTERN = `^[A-Za-z0-9][A-Za-z0-9_-]{0,${SUBJECT_MAX_LENGTH - 1}}$`;
export const SUBJECT_RE = new RegExp(SUBJECT_PATTERN);

export const isSegment = (value: string): boolean => SEGMENT_RE.test(value);
export const isSubject = (value: string): boolean => SUBJECT_RE.test(value);
