// The InfluxQL statements of an export and the stream of its rows. One query per subject and
// device type for raw readings (tags selected as columns, so rows come in time order); for
// aggregates, the subject's series (device, schema version, provenance, tags) are listed first and
// each series is aggregated by its own query, so `every=1h&fn=mean` never averages the bedroom with
// the kitchen and every stream stays in time order. Streams are merged (merge.ts) with memory
// bounded by two chunks per open stream (the one merged and the one read ahead). Simulated readings are left out unless asked for: by their
// `provenance` tag, and by the registry for points written before that tag existed.
import type { Project } from '../registry/types.js';
import {
  type InfluxQLTarget,
  type InfluxSeries,
  querySeries,
  quoteIdent,
  quoteString,
} from '../storage/influxql.js';
import { formatTime } from './export-time.js';
import { mergeRows, sortTies } from './merge.js';
import { devicePseudonym, pseudonym } from './pseudonym.js';
import {
  consentedWindows,
  QueryError,
  type ReadingRow,
  type ReadingsQuery,
  type TypeQuery,
} from './readings.js';

/** The tags every point carries that come out (as pseudonym, number or label), besides the schema's. */
const SERIES_TAGS = ['device_id', 'schema_version', 'provenance'] as const;

interface Window {
  readonly subject: string;
  readonly fromMs: number;
  readonly toMs: number;
}

function where(q: ReadingsQuery, t: TypeQuery, w: Window, series?: Readonly<Record<string, string>>): string {
  const parts = [
    `"subject" = ${quoteString(w.subject)}`,
    `"device_type" = ${quoteString(t.type)}`,
    `time >= ${w.fromMs}ms`,
    `time < ${w.toMs}ms`,
  ];
  // Matches points without the tag too (written before provenance was recorded).
  if (!q.includeSimulated) parts.push(`"provenance" != 'simulated'`);
  // An empty value matches a series without that tag, as InfluxDB lists it.
  for (const [k, v] of Object.entries(series ?? {})) parts.push(`${quoteIdent(k)} = ${quoteString(v)}`);
  return parts.join(' AND ');
}

/** Raw readings of one subject and type: the series tags and schema tags selected as columns. */
export function buildStatement(q: ReadingsQuery, t: TypeQuery, w: Window): string {
  const columns = [...SERIES_TAGS, ...t.tags, ...t.fields].map(quoteIdent).join(', ');
  return `SELECT ${columns} FROM ${quoteIdent(t.measurement)} WHERE ${where(q, t, w)}`;
}

/** The series of one subject and type that an aggregate groups by (one row each). */
export function buildSeriesStatement(q: ReadingsQuery, t: TypeQuery, w: Window): string {
  const group = [...SERIES_TAGS, ...t.tags].map(quoteIdent).join(', ');
  return `SELECT count(*) FROM ${quoteIdent(t.measurement)} WHERE ${where(q, t, w)} GROUP BY ${group}`;
}

// What buildAggregateStatement writes into tz(): an IANA name (Europe/Copenhagen, Etc/GMT+1, UTC).
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

/**
 * The aggregate of one series, window by window. tz() moves the windows' boundaries to the lab's
 * midnights (1d = a local day, 23 or 25 hours across a daylight-saving change); the zone name is
 * checked, not only quoted.
 */
export function buildAggregateStatement(
  q: ReadingsQuery,
  t: TypeQuery,
  w: Window,
  series: Readonly<Record<string, string>>,
): string {
  if (!ZONE_NAME.test(q.timeZone)) throw new QueryError(`"${q.timeZone}" is not a time zone name`);
  const select = t.fields.map((f) => `${q.fn}(${quoteIdent(f)}) AS ${quoteIdent(f)}`).join(', ');
  return `SELECT ${select} FROM ${quoteIdent(t.measurement)} WHERE ${where(q, t, w, series)} GROUP BY time(${q.every}) fill(none) tz(${quoteString(q.timeZone)})`;
}

export interface ReadingsSource {
  readonly influx: InfluxQLTarget;
  readonly project: Project;
  readonly query: ReadingsQuery;
  /** Device ids the registry marks simulated: their untagged (older) points are simulated too. */
  readonly simulatedDevices: ReadonlySet<string>;
}

/** What turns InfluxDB's values of one subject and type into rows. */
interface RowMaker {
  readonly src: ReadingsSource;
  readonly type: TypeQuery;
  readonly subject: string;
  /** Where the subject's data range starts: no aggregate row is labelled before it. */
  readonly fromMs: number;
  readonly devices: Map<string, string>;
}

/**
 * A reading's provenance: its own tag when it has one; a point written before the tag existed is
 * simulated when the registry marks its device so, and real otherwise.
 */
export function provenanceOf(
  tagged: unknown,
  deviceId: unknown,
  simulatedDevices: ReadonlySet<string>,
): 'real' | 'simulated' {
  if (tagged === 'real' || tagged === 'simulated') return tagged;
  return typeof deviceId === 'string' && simulatedDevices.has(deviceId) ? 'simulated' : 'real';
}

/** Where a series' values sit: a column index, or the series' GROUP BY tag value when not a column. */
type Slot = number | string | undefined;

/** Per series (its columns are fixed), the slot of every value a row takes. */
function slotsOf(
  m: RowMaker,
  columns: readonly string[],
  fixed: Readonly<Record<string, string>>,
): { device: Slot; version: Slot; provenance: Slot; tags: Slot[]; fields: Slot[] } {
  const index = new Map(columns.map((c, i) => [c, i]));
  const slot = (c: string): Slot => index.get(c) ?? fixed[c];
  const q = m.src.query;
  return {
    device: slot('device_id'),
    version: slot('schema_version'),
    provenance: slot('provenance'),
    tags: q.tags.map(slot),
    fields: q.fields.map((f) => slot(f.name)),
  };
}

const at = (v: readonly unknown[], s: Slot): unknown => (typeof s === 'number' ? v[s] : s);

/**
 * The rows of one series' values (one InfluxDB chunk). Raw readings: time is InfluxDB's RFC 3339
 * text (nanoseconds). Aggregates: the window's start in epoch ms, labelled within what the row
 * covers: InfluxDB labels a window with its start even when the range begins inside it (every=5h
 * before the consent, every=9999d years back). Simulated rows are left out unless asked for.
 */
function makeRows(m: RowMaker, s: InfluxSeries, fixed: Readonly<Record<string, string>>): ReadingRow[] {
  const q = m.src.query;
  const slots = slotsOf(m, s.columns, fixed);
  const out: ReadingRow[] = [];
  for (const v of s.values) {
    const deviceId = at(v, slots.device);
    const provenance = provenanceOf(at(v, slots.provenance), deviceId, m.src.simulatedDevices);
    if (provenance === 'simulated' && !q.includeSimulated) continue;
    const time =
      typeof v[0] === 'number' ? new Date(Math.max(v[0], m.fromMs)).toISOString() : (v[0] as string);
    let device: string | null = null;
    if (typeof deviceId === 'string' && deviceId !== '') {
      device = m.devices.get(deviceId) ?? devicePseudonym(m.src.project.secret, deviceId);
      m.devices.set(deviceId, device);
    }
    const tagged = at(v, slots.version);
    const version = typeof tagged === 'string' ? Number(tagged) : Number.NaN;
    // Keys in this order: NDJSON and JSON exports write them as they are.
    const row: ReadingRow = {
      time: formatTime(time, q.precision),
      subject: m.subject,
      device,
      device_type: m.type.type,
      schema_version: Number.isInteger(version) ? version : null,
      provenance,
    };
    for (let i = 0; i < q.tags.length; i++) {
      const t = at(v, slots.tags[i]);
      row[q.tags[i] as string] = typeof t === 'string' && t !== '' ? t : null;
    }
    for (let i = 0; i < q.fields.length; i++)
      row[(q.fields[i] as { name: string }).name] = (at(v, slots.fields[i]) ?? null) as ReadingRow[string];
    out.push(row);
  }
  return out;
}

/**
 * The rows of one statement, a chunk at a time. Raw readings ask InfluxDB for RFC 3339 times
 * (nanoseconds, which a JSON number could not carry); aggregates for epoch ms (window starts,
 * compared with the range). InfluxDB's refusal, or its absence, throws an InfluxQueryError
 * (storage/influxql.ts).
 */
async function* seriesRows(
  m: RowMaker,
  statement: string,
  chunkSize: number,
  fixed: Readonly<Record<string, string>> = {},
): AsyncGenerator<ReadingRow[]> {
  const time = m.src.query.fn ? 'ms' : 'rfc3339';
  for await (const s of querySeries(m.src.influx, statement, chunkSize, time)) {
    const rows = makeRows(m, s, fixed);
    if (rows.length > 0) yield rows;
  }
}

/** Aggregates of one subject and type: one time-ordered stream per series, merged. */
async function* aggregateRows(m: RowMaker, w: Window, chunkSize: number): AsyncGenerator<ReadingRow[]> {
  const q = m.src.query;
  const series: Readonly<Record<string, string>>[] = [];
  for await (const s of querySeries(m.src.influx, buildSeriesStatement(q, m.type, w), chunkSize))
    series.push(s.tags ?? {});
  yield* mergeRows(
    series.map((tags) => seriesRows(m, buildAggregateStatement(q, m.type, w, tags), chunkSize, tags)),
  );
}

/** The streams of one subject: one per asked type, each ordered by time, then values. */
function subjectStreams(src: ReadingsSource, w: Window, chunkSize: number): AsyncGenerator<ReadingRow[]>[] {
  const subject = pseudonym(src.project.secret, w.subject);
  return src.query.types.map((type) => {
    const m: RowMaker = { src, type, subject, fromMs: w.fromMs, devices: new Map() };
    return src.query.fn
      ? aggregateRows(m, w, chunkSize)
      : sortTies(seriesRows(m, buildStatement(src.query, type, w), chunkSize));
  });
}

/**
 * Streams the rows of every consented subject from InfluxDB. `order=time`: all subjects merged by
 * time, then pseudonym (merge.ts), every stream read side by side; `order=subject`: one subject after
 * the other in pseudonym order (never by participant code), each merged by time. The chunk shrinks as
 * streams grow so that memory stays near 50,000 rows: 25,000 being merged and as many read ahead
 * (merge.ts). Smaller chunks also let most rows die young, before V8 moves them to its old
 * generation (at 50,000 + 50,000 a 1,000,000-row export grew the gateway's RSS by about 70 MiB more).
 * Rows come in batches (merge.ts says why).
 */
export async function* streamReadings(src: ReadingsSource): AsyncGenerator<ReadingRow[]> {
  const windows = consentedWindows(src.project, src.query);
  const streams = Math.max(1, windows.length * src.query.types.length);
  const chunkSize = Math.max(100, Math.min(5000, Math.floor(25_000 / streams)));
  if (src.query.order === 'time') {
    yield* mergeRows(windows.flatMap((w) => subjectStreams(src, w, chunkSize)));
    return;
  }
  const bySubject = windows
    .map((w) => ({ w, key: pseudonym(src.project.secret, w.subject) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const { w } of bySubject) yield* mergeRows(subjectStreams(src, w, chunkSize));
}
