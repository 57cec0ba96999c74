// Readings of one project, as researchers may see them: only the project's device types and
// released fields, only its period, only consenting subjects from their consent date (a withdrawn
// subject is left out entirely), each subject as its project pseudonym. Dates (period, consents)
// are days in the lab's time zone, and so are aggregation windows. Queries are built from
// validated values only: names come from the schemas, subjects from the registry, times are numbers.
// The shape of each parameter is checked before, by READINGS_PARAMS (readings-params.ts).
import { addDays, startOfDay } from '../config/time-zone.js';
import type { Project } from '../registry/types.js';
import type { SchemaSet } from '../schemas/types.js';
import {
  type InfluxAuth,
  type InfluxQLTarget,
  querySeries,
  quoteIdent,
  quoteString,
} from '../storage/influxql.js';
import { mergeRows, sortTies } from './merge.js';
import { devicePseudonym, pseudonym } from './pseudonym.js';
import { AGGREGATES, type Aggregate, EVERY, type ReadingsParams } from './readings-params.js';

export class QueryError extends Error {}

export interface ReadingsQuery {
  readonly type: string;
  readonly measurement: string;
  readonly fields: readonly string[];
  readonly fromMs: number;
  readonly toMs: number;
  readonly every?: string;
  readonly fn?: Aggregate;
  /** The lab's time zone: dates are its days, and windows start at its midnights. */
  readonly timeZone: string;
}

// What buildStatement writes into tz(): an IANA name (Europe/Copenhagen, Etc/GMT+1, UTC).
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/**
 * Checks parameters that already passed READINGS_PARAMS (each given once, well-formed) against the
 * project and the schemas; throws QueryError (400).
 */
export function parseReadingsQuery(
  project: Project,
  schemas: SchemaSet,
  params: ReadingsParams,
  timeZone: string,
): ReadingsQuery {
  const { type, every, fn } = params;
  if (!project.types.includes(type))
    throw new QueryError(`type must be one of the project's device types: ${project.types.join(', ')}`);
  const schema = schemas.latest(type);
  if (!schema) throw new QueryError(`no schema for device type ${type}`);
  const available = schema.timeseries.fields
    .map((f) => f.name)
    .filter((f) => project.fields.length === 0 || project.fields.includes(f));
  const asked = params.fields?.split(',');
  for (const f of asked ?? []) {
    if (!available.includes(f))
      throw new QueryError(
        `field "${f.slice(0, 40)}" is not released for ${type}; released: ${available.join(', ')}`,
      );
  }
  const fields = asked ?? available;
  if (fields.length === 0) throw new QueryError(`no field of ${type} is released to this project`);
  // The period runs from the lab's midnight starting `from` to the one ending `to`.
  const periodFrom = startOfDay(project.from, timeZone);
  const periodTo = startOfDay(addDays(project.to, 1), timeZone);
  const time = (name: 'from' | 'to', fallback: number) => {
    const v = params[name];
    if (v === undefined) return fallback;
    // The pattern passed; an impossible date (2026-13-40) still does not parse.
    if (Number.isNaN(Date.parse(v)))
      throw new QueryError(`${name} must be an RFC 3339 time such as 2026-03-01T00:00:00Z`);
    return Date.parse(v);
  };
  const fromMs = Math.max(periodFrom, time('from', periodFrom));
  const toMs = Math.min(periodTo, time('to', periodTo));
  if (fromMs >= toMs)
    throw new QueryError(`the period asked for is outside the project's ${project.from} – ${project.to}`);
  if ((every === undefined) !== (fn === undefined))
    throw new QueryError('every and fn go together (e.g. every=1h&fn=mean)');
  // Both are written into InfluxQL: checked here too, whoever the caller, not only by the route schema.
  if (every !== undefined && !new RegExp(EVERY).test(every))
    throw new QueryError('every must look like 15m, 1h or 1d');
  if (fn !== undefined && !(AGGREGATES as readonly string[]).includes(fn))
    throw new QueryError(`fn must be one of ${AGGREGATES.join(', ')}`);
  if (fn && fn !== 'count' && fn !== 'last') {
    const numeric = new Set(
      schema.timeseries.fields.filter((f) => f.kind === 'integer' || f.kind === 'float').map((f) => f.name),
    );
    for (const f of fields)
      if (!numeric.has(f)) throw new QueryError(`fn=${fn} needs numeric fields; "${f}" is not`);
  }
  return {
    type,
    measurement: schema.timeseries.measurement,
    fields,
    fromMs,
    toMs,
    ...(every ? { every } : {}),
    ...(fn ? { fn } : {}),
    timeZone,
  };
}

/** The subjects whose data may come out, with the window their consent covers. */
export function consentedWindows(
  project: Project,
  q: ReadingsQuery,
): { subject: string; fromMs: number; toMs: number }[] {
  const out: { subject: string; fromMs: number; toMs: number }[] = [];
  for (const c of project.consents) {
    if (c.withdrawn) continue;
    const from = Math.max(q.fromMs, startOfDay(c.from, q.timeZone));
    if (from < q.toMs) out.push({ subject: c.subject, fromMs: from, toMs: q.toMs });
  }
  return out.sort((a, b) => a.subject.localeCompare(b.subject));
}

/** The tag read (raw rows only) to give each row its `device` pseudonym; never output as is. */
const DEVICE_TAG = 'device_id';

/** One InfluxQL statement per subject (InfluxQL cannot OR time ranges). Every part is validated. */
export function buildStatement(
  q: ReadingsQuery,
  w: { subject: string; fromMs: number; toMs: number },
  withDevice = false,
): string {
  const select = q.fn
    ? q.fields.map((f) => `${q.fn}(${quoteIdent(f)}) AS ${quoteIdent(f)}`).join(', ')
    : [...q.fields, ...(withDevice ? [DEVICE_TAG] : [])].map(quoteIdent).join(', ');
  const where = `"subject" = ${quoteString(w.subject)} AND "device_type" = ${quoteString(q.type)} AND time >= ${w.fromMs}ms AND time < ${w.toMs}ms`;
  let group = '';
  if (q.every) {
    // tz() moves the windows' boundaries to the lab's midnights (1d = a local day, 23 or 25 hours
    // across a daylight-saving change); the name is checked, not only quoted.
    if (!ZONE_NAME.test(q.timeZone)) throw new QueryError(`"${q.timeZone}" is not a time zone name`);
    group = ` GROUP BY time(${q.every}) fill(none) tz(${quoteString(q.timeZone)})`;
  }
  return `SELECT ${select} FROM ${quoteIdent(q.measurement)} WHERE ${where}${group}`;
}

export interface ReadingRow {
  time: string;
  subject: string;
  [field: string]: string | number | boolean | null;
}

/**
 * Streams the rows of every consented subject from InfluxDB, ordered by time, then pseudonym (see
 * merge.ts): one chunked query per subject, all read side by side, so memory holds about one chunk
 * per subject. The chunk shrinks as subjects grow so that bound stays near 50,000 rows.
 */
export function streamReadings(opts: {
  influxUrl: string;
  db: string;
  /** The read credentials (storage/influxql.ts influxReadTarget); absent: none. */
  auth?: InfluxAuth;
  project: Project;
  query: ReadingsQuery;
  /** Raw rows get a `device` column: the device's project pseudonym (FHIR needs it). */
  withDevice?: boolean;
}): AsyncGenerator<ReadingRow> {
  const windows = consentedWindows(opts.project, opts.query);
  const chunkSize = Math.max(100, Math.min(5000, Math.floor(50_000 / Math.max(1, windows.length))));
  return mergeRows(
    windows.map((w) =>
      sortTies(
        streamSubject(
          { url: opts.influxUrl, db: opts.db, ...(opts.auth ? { auth: opts.auth } : {}) },
          buildStatement(opts.query, w, opts.withDevice === true && !opts.query.fn),
          chunkSize,
          pseudonym(opts.project.secret, w.subject),
          w.fromMs,
          (id) => devicePseudonym(opts.project.secret, id),
        ),
      ),
    ),
  );
}

/**
 * The rows of one subject's statement, in InfluxDB's order (by time), as they arrive. `fromMs` is
 * where the subject's data range starts: InfluxDB labels a window with its start even when the
 * range begins inside it (every=5h before the consent, every=9999d years back), so a label is
 * never earlier than that start: max(window start, range start).
 */
async function* streamSubject(
  target: InfluxQLTarget,
  statement: string,
  chunkSize: number,
  subject: string,
  fromMs: number,
  device: (id: string) => string,
): AsyncGenerator<ReadingRow> {
  const pseudonyms = new Map<string, string>();
  for await (const s of querySeries(target, statement, chunkSize)) {
    for (const v of s.values) {
      const row: ReadingRow = { time: new Date(Math.max(v[0] as number, fromMs)).toISOString(), subject };
      for (let i = 1; i < s.columns.length; i++) {
        const column = s.columns[i] as string;
        if (column === DEVICE_TAG) {
          const id = String(v[i]);
          const known = pseudonyms.get(id) ?? device(id);
          pseudonyms.set(id, known);
          row.device = known;
        } else row[column] = (v[i] ?? null) as ReadingRow[string];
      }
      yield row;
    }
  }
}
