// Pure: payload bytes to schema-valid readings, and a Rejection for everything else. Each reading
// of a batch is judged alone, so one bad reading never costs the others. Never throws for input.
import type { ErrorObject } from 'ajv';
import type { DeviceSchema } from '../schemas/types.js';
import { type Rejection, type RejectionError, rejection } from './record.js';

export interface ValidReading {
  readonly index: number;
  readonly value: Record<string, unknown>;
}

export interface ValidationResult {
  readonly readings: ValidReading[];
  readonly rejections: Rejection[];
}

export interface ValidateLimits {
  /** Most readings in one `{"readings": [...]}` batch. */
  readonly maxBatchReadings: number;
}

const MAX_ERRORS = 20;
const MAX_VALUE_CHARS = 120;
/** A path names a property of the device's own payload: a property name can be as long as a packet. */
const MAX_PATH_CHARS = 200;

function valueAt(root: unknown, pointer: string): unknown {
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Only small scalars are echoed back: enough to see the mistake, never a whole nested payload. */
function echo(value: unknown): { value?: unknown } {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return { value };
  if (typeof value === 'string') {
    return { value: value.length > MAX_VALUE_CHARS ? `${value.slice(0, MAX_VALUE_CHARS)}…` : value };
  }
  return {};
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

export function toRejectionErrors(errors: readonly ErrorObject[], reading: unknown): RejectionError[] {
  const out: RejectionError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    let path = e.instancePath;
    let message = e.message ?? 'is invalid';
    let withValue = true;
    if (e.keyword === 'required') {
      path = `${path}/${escapePointer(String(e.params.missingProperty))}`;
      message = 'is required';
      withValue = false;
    } else if (e.keyword === 'additionalProperties') {
      path = `${path}/${escapePointer(String(e.params.additionalProperty))}`;
      message = 'is not a property of this device type';
    } else if (e.keyword === 'enum') {
      message = `must be one of: ${(e.params.allowedValues as unknown[]).map(String).join(', ')}`;
    } else if (e.keyword === 'format') {
      message = `must be ${e.params.format === 'date-time' ? 'an RFC 3339 date-time such as 2026-11-22T10:00:00Z' : `a ${String(e.params.format)}`}`;
    }
    const key = `${path}\0${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const value = withValue ? echo(valueAt(reading, path)) : {};
    if (path.length > MAX_PATH_CHARS) path = `${path.slice(0, MAX_PATH_CHARS)}…`;
    out.push({ path, message, ...value });
    if (out.length >= MAX_ERRORS) break;
  }
  return out;
}

function validateOne(schema: DeviceSchema, reading: unknown, index: number): ValidReading | Rejection {
  if (schema.validate(reading)) return { index, value: reading as Record<string, unknown> };
  return {
    reason: 'schema',
    errors: toRejectionErrors(schema.validate.errors ?? [], reading),
    readingIndex: index,
    schema: schema.key,
  };
}

export function validatePayload(
  payload: Buffer,
  schema: DeviceSchema,
  limits: ValidateLimits,
): ValidationResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    const message = err instanceof SyntaxError ? err.message : 'JSON is nested too deeply';
    return {
      readings: [],
      rejections: [rejection('json', `not valid JSON: ${message}`, { schema: schema.key })],
    };
  }
  const isBatch =
    typeof parsed === 'object' &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    Object.hasOwn(parsed, 'readings');
  if (!isBatch) {
    const one = validateOne(schema, parsed, 0);
    return 'reason' in one ? { readings: [], rejections: [one] } : { readings: [one], rejections: [] };
  }
  const batch = parsed as Record<string, unknown>;
  const extra = Object.keys(batch).filter((k) => k !== 'readings');
  const list = batch.readings;
  if (extra.length > 0 || !Array.isArray(list) || list.length === 0) {
    return {
      readings: [],
      rejections: [
        rejection(
          'schema',
          'a batch is {"readings": [reading, ...]} with at least one reading and no other key',
          {
            path: extra.length > 0 ? `/${escapePointer(extra[0] as string)}` : '/readings',
            schema: schema.key,
          },
        ),
      ],
    };
  }
  if (list.length > limits.maxBatchReadings) {
    return {
      readings: [],
      rejections: [
        rejection(
          'too-large',
          `a batch holds at most ${limits.maxBatchReadings} readings; this one has ${list.length}`,
          {
            path: '/readings',
            schema: schema.key,
          },
        ),
      ],
    };
  }
  const result: ValidationResult = { readings: [], rejections: [] };
  list.forEach((reading, index) => {
    const one = validateOne(schema, reading, index);
    if ('reason' in one) result.rejections.push(one);
    else result.readings.push(one);
  });
  return result;
}
