// Pure: RFC 3339 timestamps to nanoseconds, keeping the sub-millisecond digits a Date would drop.

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d{2}:\d{2})$/;

export interface Instant {
  /** Whole milliseconds since the epoch (floor). */
  readonly ms: number;
  /** Nanoseconds within that millisecond, 0–999,999. */
  readonly subMsNs: number;
  /** Nanoseconds since the epoch as a decimal string, exactly (line protocol's timestamp). */
  readonly ns: string;
}

/**
 * An RFC 3339 date-time to an Instant, or undefined when the text is not one. Numbers and strings
 * only: this runs for every reading, and BigInt arithmetic allocates.
 */
export function parseRfc3339(text: string): Instant | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, date, time, fraction = '', offset] = m;
  const offsetPart = offset === 'z' ? 'Z' : offset;
  // Leap second 60: JSON Schema's date-time accepts it; count it as the last instant of :59.
  const leap = (time as string).endsWith(':60');
  const seconds = Date.parse(`${date}T${leap ? `${(time as string).slice(0, 6)}59` : time}${offsetPart}`);
  if (Number.isNaN(seconds)) return undefined;
  const nanos = leap ? 999_999_999 : fraction === '' ? 0 : Number(fraction.padEnd(9, '0'));
  const ms = seconds + Math.floor(nanos / 1_000_000);
  const subMsNs = nanos % 1_000_000;
  const ns =
    ms > 0
      ? `${ms}${subMsNs.toString().padStart(6, '0')}`
      : (BigInt(ms) * 1_000_000n + BigInt(subMsNs)).toString();
  return { ms, subMsNs, ns };
}

/** Nanoseconds since the epoch, or undefined when the text is not an RFC 3339 date-time. */
export function parseRfc3339Ns(text: string): bigint | undefined {
  const instant = parseRfc3339(text);
  return instant && BigInt(instant.ns);
}

export function nsToIso(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const sub = ns % 1_000_000_000n;
  const iso = new Date(Number(ms)).toISOString().slice(0, 19);
  return `${iso}.${sub.toString().padStart(9, '0')}Z`;
}
