// Readings of one project, as researchers may see them: only the project's device types and
// released fields, only its period, only consenting subjects from their consent date (a withdrawn
// subject is left out entirely), each subject and device as its project pseudonym, never an id.
// Dates (period, consents) are days in the lab's time zone, and so are aggregation windows.
// Queries are built from validated values only: names come from the schemas, subjects from the
// registry, times are numbers. The shape of each parameter is checked before, by READINGS_PARAMS
// (readings-params.ts); the statements and the row stream are in readings-stream.ts.
import { addDays, startOfDay } from '../config/time-zone.js';
import type { Project } from '../registry/types.js';
import type { FieldKind, SchemaSet } from '../schemas/types.js';
import {
  AGGREGATES,
  type Aggregate,
  EVERY,
  type Order,
  type Precision,
  type ReadingsParams,
} from './readings-params.js';

export class QueryError extends Error {}

/** What one device type of the request reads: its measurement, and its share of the columns. */
export interface TypeQuery {
  readonly type: string;
  readonly measurement: string;
  /** The fields of this type that come out (each is also in ReadingsQuery.fields). */
  readonly fields: readonly string[];
  /** The tags of this type's schema that come out (each is also in ReadingsQuery.tags). */
  readonly tags: readonly string[];
}

export interface ReadingsQuery {
  readonly types: readonly TypeQuery[];
  /** Field columns in order, each name once, with the kind its values come out as. */
  readonly fields: readonly { readonly name: string; readonly kind: FieldKind }[];
  /** Tag columns in order, each name once: the union of the asked types' schema tags (or `tags=`). */
  readonly tags: readonly string[];
  readonly fromMs: number;
  readonly toMs: number;
  readonly every?: string;
  readonly fn?: Aggregate;
  readonly order: Order;
  readonly precision: Precision;
  readonly includeSimulated: boolean;
  /** The lab's time zone: dates are its days, and windows start at its midnights. */
  readonly timeZone: string;
}

/** How a column's values are typed: a field kind, the time, or the schema version (a small integer). */
export type ColumnKind = FieldKind | 'time' | 'version';

/** The columns every export starts with, in order; the tags, then the fields follow. */
export const FIXED_COLUMNS: readonly { readonly name: string; readonly kind: ColumnKind }[] = [
  { name: 'time', kind: 'time' },
  { name: 'subject', kind: 'string' },
  { name: 'device', kind: 'string' },
  { name: 'device_type', kind: 'string' },
  { name: 'schema_version', kind: 'version' },
  { name: 'provenance', kind: 'string' },
];

/** Every column of an export, in order, with its kind. */
export function exportColumns(q: ReadingsQuery): { name: string; kind: ColumnKind }[] {
  return [
    ...FIXED_COLUMNS,
    ...q.tags.map((name) => ({ name, kind: 'string' as const })),
    ...q.fields.map((f) => ({ name: f.name, kind: f.kind })),
  ];
}

const list = (v: string | undefined) => (v === undefined ? undefined : [...new Set(v.split(','))]);
const short = (s: string) => s.slice(0, 40);

interface TypeFields {
  type: string;
  measurement: string;
  tags: readonly string[];
  fields: readonly { name: string; kind: FieldKind }[];
}

/** The asked device types, each with its schema's tags and the fields released to the project. */
function parseTypes(project: Project, schemas: SchemaSet, params: ReadingsParams): TypeFields[] {
  return (list(params.type) ?? []).map((type) => {
    if (!project.types.includes(type))
      throw new QueryError(
        `type must be one of the project's device types (comma-separated for several): ${project.types.join(', ')}`,
      );
    const schema = schemas.latest(type);
    if (!schema) throw new QueryError(`no schema for device type ${type}`);
    const ts = schema.timeseries;
    const fields = ts.fields.filter((f) => project.fields.length === 0 || project.fields.includes(f.name));
    return { type, measurement: ts.measurement, tags: ts.tags, fields };
  });
}

/** Which fields each type puts out; a name asked must be released for at least one asked type. */
function pickFields(types: readonly TypeFields[], asked: string[] | undefined): string[][] {
  const released = [...new Set(types.flatMap((t) => t.fields.map((f) => f.name)))];
  for (const f of asked ?? [])
    if (!released.includes(f))
      throw new QueryError(
        `field "${short(f)}" is not released for ${types.map((t) => t.type).join(', ')}; released: ${released.join(', ')}`,
      );
  return types.map((t) => {
    const names = t.fields.map((f) => f.name).filter((n) => !asked || asked.includes(n));
    if (names.length === 0)
      throw new QueryError(
        asked
          ? `none of the fields asked is released for ${t.type}; ask for it separately or add one of ${t.fields.map((f) => f.name).join(', ')}`
          : `no field of ${t.type} is released to this project`,
      );
    return names;
  });
}

/** The tag columns: every tag the asked types' schemas declare, or those named in `tags=`. */
function pickTags(types: readonly TypeFields[], asked: string[] | undefined): string[] {
  const declared = [...new Set(types.flatMap((t) => t.tags))];
  for (const tag of asked ?? [])
    if (!declared.includes(tag))
      throw new QueryError(
        `tag "${short(tag)}" is not a tag of ${types.map((t) => t.type).join(', ')}; tags: ${declared.join(', ') || 'none'}`,
      );
  return asked ? declared.filter((t) => asked.includes(t)) : declared;
}

/** The kind a field's values come out as: an aggregate can change it (mean of integers is a float). */
function outputKind(kind: FieldKind, fn: Aggregate | undefined): FieldKind {
  if (fn === 'count') return 'integer';
  if (fn === 'mean') return 'float';
  return kind;
}

/** One column per field name; a name two asked types declare with different kinds cannot share one. */
function fieldColumns(
  types: readonly TypeFields[],
  picked: readonly string[][],
  fn: Aggregate | undefined,
): { name: string; kind: FieldKind }[] {
  const out = new Map<string, { name: string; kind: FieldKind; type: string }>();
  types.forEach((t, i) => {
    for (const name of picked[i] ?? []) {
      const kind = (t.fields.find((f) => f.name === name) as { kind: FieldKind }).kind;
      if (fn && fn !== 'count' && fn !== 'last' && kind !== 'integer' && kind !== 'float')
        throw new QueryError(`fn=${fn} needs numeric fields; "${name}" of ${t.type} is not`);
      const seen = out.get(name);
      if (seen && seen.kind !== kind)
        throw new QueryError(
          `field "${name}" is ${seen.kind} in ${seen.type} but ${kind} in ${t.type}: export these types separately`,
        );
      if (!seen) out.set(name, { name, kind, type: t.type });
    }
  });
  return [...out.values()].map(({ name, kind }) => ({ name, kind: outputKind(kind, fn) }));
}

/** The project period (from the lab's midnight starting `from` to the one ending `to`) cut to `from`/`to`. */
function parsePeriod(
  project: Project,
  params: ReadingsParams,
  timeZone: string,
): { fromMs: number; toMs: number } {
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
  return { fromMs, toMs };
}

function checkAggregation(every: string | undefined, fn: string | undefined): void {
  if ((every === undefined) !== (fn === undefined))
    throw new QueryError('every and fn go together (e.g. every=1h&fn=mean)');
  // Both are written into InfluxQL: checked here too, whoever the caller, not only by the route schema.
  if (every !== undefined && !new RegExp(EVERY).test(every))
    throw new QueryError('every must look like 15m, 1h or 1d');
  if (fn !== undefined && !(AGGREGATES as readonly string[]).includes(fn))
    throw new QueryError(`fn must be one of ${AGGREGATES.join(', ')}`);
}

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
  const { every, fn } = params;
  checkAggregation(every, fn);
  const types = parseTypes(project, schemas, params);
  const picked = pickFields(types, list(params.fields));
  const tags = pickTags(types, list(params.tags));
  const fields = fieldColumns(types, picked, fn);
  return {
    types: types.map((t, i) => ({
      type: t.type,
      measurement: t.measurement,
      fields: picked[i] ?? [],
      tags: t.tags.filter((tag) => tags.includes(tag)),
    })),
    fields,
    tags,
    ...parsePeriod(project, params, timeZone),
    ...(every ? { every } : {}),
    ...(fn ? { fn } : {}),
    order: params.order ?? 'time',
    precision: params.precision ?? 'ns',
    includeSimulated: params.include === 'simulated',
    timeZone,
  };
}

/** The subjects whose data may come out, with the window their consent covers. */
export function consentedWindows(
  project: Project,
  q: Pick<ReadingsQuery, 'fromMs' | 'toMs' | 'timeZone'>,
): { subject: string; fromMs: number; toMs: number }[] {
  const out: { subject: string; fromMs: number; toMs: number }[] = [];
  for (const c of project.consents) {
    if (c.withdrawn) continue;
    // A consent starts at the lab's midnight of its date.
    const from = Math.max(q.fromMs, startOfDay(c.from, q.timeZone));
    if (from < q.toMs) out.push({ subject: c.subject, fromMs: from, toMs: q.toMs });
  }
  return out.sort((a, b) => a.subject.localeCompare(b.subject));
}

export interface ReadingRow {
  time: string;
  subject: string;
  [column: string]: string | number | boolean | null;
}
