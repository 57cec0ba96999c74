// The query parameters of a readings export, defined once: the JSON Schema that checks them (HTTP
// route), the TypeScript type the query builder reads, and the OpenAPI description generated from
// the same object. It must never hold a rule that needs the project or the schemas (allowed types,
// released fields, the project period): those stay in readings.ts.
import { type Static, Type } from 'typebox';
import type { Project } from '../registry/types.js';
import { FORMATS } from './formats.js';

export const AGGREGATES = ['mean', 'min', 'max', 'count', 'last'] as const;
/** An aggregation window: it is written into InfluxQL, so readings.ts checks it again. */
export const EVERY = '^[1-9][0-9]{0,3}(m|h|d)$';
export type Aggregate = (typeof AGGREGATES)[number];
/** `time`: all subjects merged in time order; `subject`: one subject after the other, each in time order. */
export const ORDERS = ['time', 'subject'] as const;
export type Order = (typeof ORDERS)[number];
/** Fraction digits of the time column: 0, 3, 6 or 9; Arrow's Timestamp unit follows. */
export const PRECISIONS = ['s', 'ms', 'us', 'ns'] as const;
export type Precision = (typeof PRECISIONS)[number];

// RFC 3339 with the seconds optional, as the API has always taken it; Date.parse then rejects
// impossible dates (month 13) in readings.ts.
const TIME = '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d(:\\d\\d(\\.\\d{1,9})?)?(Z|[+-]\\d\\d:\\d\\d)$';

export const READINGS_PARAMS = Type.Object(
  {
    type: Type.String({
      description:
        'Device types of the project, comma-separated; several types come out stacked, one row per reading',
    }),
    fields: Type.Optional(
      Type.String({ description: 'Comma-separated released fields (default: all released)' }),
    ),
    tags: Type.Optional(
      Type.String({
        description:
          "Comma-separated tags of the types' schemas to put out as columns and group aggregates by (default: all)",
      }),
    ),
    from: Type.Optional(
      Type.String({ pattern: TIME, description: 'Start, RFC 3339 (clipped to the project period)' }),
    ),
    to: Type.Optional(
      Type.String({ pattern: TIME, description: 'End, exclusive, RFC 3339 (clipped to the project period)' }),
    ),
    every: Type.Optional(
      Type.String({
        pattern: EVERY,
        description:
          "Aggregation window, with fn; windows follow the lab's time zone (1d = a local day). A row's time is the start of the data it covers: the window's start, or the start of the range (consent, period, from) when later",
      }),
    ),
    fn: Type.Optional(Type.Enum([...AGGREGATES], { type: 'string', description: 'Aggregate, with every' })),
    order: Type.Optional(
      Type.Enum([...ORDERS], {
        type: 'string',
        description: 'Row order (default time: all subjects merged)',
      }),
    ),
    precision: Type.Optional(
      Type.Enum([...PRECISIONS], { type: 'string', description: 'Time resolution (default ns)' }),
    ),
    include: Type.Optional(
      Type.Enum(['simulated'], {
        type: 'string',
        description: "Also readings of simulated devices (left out by default; column 'provenance' tells)",
      }),
    ),
    format: Type.Optional(
      Type.Enum(Object.keys(FORMATS) as (keyof typeof FORMATS)[], {
        type: 'string',
        default: 'csv',
        description: 'Row encoding',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ReadingsParams = Static<typeof READINGS_PARAMS>;

/** What a parameter that fails its pattern must look like, in the words the API has always used. */
const PATTERN_HINTS: Readonly<Record<string, string>> = {
  from: 'from must be an RFC 3339 time such as 2026-03-01T00:00:00Z',
  to: 'to must be an RFC 3339 time such as 2026-03-01T00:00:00Z',
  every: 'every must look like 15m, 1h or 1d',
};

/** The part of a JSON Schema validation error this module reads (ajv's ErrorObject has it). */
export interface ParamError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * The 400 message for the first parameter that failed READINGS_PARAMS: readable, saying what is
 * allowed. The project names the device types a missing `type` could have been.
 */
export function describeParamError(error: ParamError, project: Project): string {
  const name = error.instancePath.replace(/^\//, '');
  const allowed = Object.keys(READINGS_PARAMS.properties).join(', ');
  switch (error.keyword) {
    case 'required':
      return `${String(error.params.missingProperty)} is required: one of ${project.types.join(', ')}`;
    case 'additionalProperties':
      return `unknown parameter "${String(error.params.additionalProperty).slice(0, 40)}"; allowed: ${allowed}`;
    // A parameter given twice arrives as an array.
    case 'type':
      return `${name} must be given once`;
    case 'enum':
      return `${name} must be one of ${(error.params.allowedValues as string[]).join(', ')}`;
    case 'pattern':
      return PATTERN_HINTS[name] ?? `${name} ${error.message ?? 'is malformed'}`;
    default:
      return `${name || 'the query'} ${error.message ?? 'is malformed'}`;
  }
}
