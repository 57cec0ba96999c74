// Pure: a schema-valid reading to its InfluxDB Point, following the schema's x-timeseries block.
// Integers stay integers and floats stay floats (by schema, not by how the number looks); the
// timestamp is the reading's own, checked against the receive time.
import { subjectAt } from '../registry/assignments.js';
import { provenanceOf } from '../registry/provenance.js';
import type { Device } from '../registry/types.js';
import type { DeviceSchema } from '../schemas/types.js';
import type { FieldValue, Point } from '../storage/point.js';
import { type Rejection, rejection } from './record.js';
import { parseRfc3339 } from './time.js';

export interface TimeWindow {
  readonly maxFutureMs: number;
  readonly maxAgeMs: number;
}

// Control characters would split a line-protocol line (node-influx does not escape "\n").
const hasControlCharacter = (s: string) => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
};

// The tags every reading of a device carries, built once per device, schema and subject: points of
// one device share one frozen object, so line protocol can reuse the escaped series key (toLine).
// Keyed by the registry's Device object, which a reload replaces; the old entry is then collected,
// so a device marked simulated (or real) in the registry tags its next reading so.
const NO_SUBJECT = '';
const baseTags = new WeakMap<Device, WeakMap<DeviceSchema, Map<string, Readonly<Record<string, string>>>>>();

function deviceTags(
  device: Device,
  schema: DeviceSchema,
  subject: string | undefined,
): Readonly<Record<string, string>> {
  let bySchema = baseTags.get(device);
  if (!bySchema) {
    bySchema = new WeakMap();
    baseTags.set(device, bySchema);
  }
  let bySubject = bySchema.get(schema);
  if (!bySubject) {
    bySubject = new Map();
    bySchema.set(schema, bySubject);
  }
  let tags = bySubject.get(subject ?? NO_SUBJECT);
  if (!tags) {
    tags = Object.freeze({
      site: device.site,
      device_type: device.type,
      device_id: device.id,
      schema_version: String(schema.version),
      // Every point says whether a person or a simulator produced it (issue 18): exports filter on it.
      provenance: provenanceOf(device),
      ...(subject ? { subject } : {}),
    });
    bySubject.set(subject ?? NO_SUBJECT, tags);
  }
  return tags;
}

export function toPoint(
  reading: Record<string, unknown>,
  index: number,
  schema: DeviceSchema,
  device: Device,
  receivedAt: Date,
  window: TimeWindow,
): Point | Rejection {
  const ts = schema.timeseries;
  const at = { readingIndex: index, schema: schema.key };
  const rawTime = reading[ts.time];
  const instant = typeof rawTime === 'string' ? parseRfc3339(rawTime) : undefined;
  if (instant === undefined) {
    return rejection('schema', 'must be an RFC 3339 date-time such as 2026-11-22T10:00:00Z', {
      ...at,
      path: `/${ts.time}`,
      value: rawTime,
    });
  }
  // Exact at nanosecond resolution: a reading 1 ns past the limit is past it.
  const received = receivedAt.getTime();
  const futureLimit = received + window.maxFutureMs;
  if (instant.ms > futureLimit || (instant.ms === futureLimit && instant.subMsNs > 0)) {
    return rejection(
      'time',
      `is more than ${Math.round(window.maxFutureMs / 1000)} s ahead of the gateway clock (${receivedAt.toISOString()}); check the device clock`,
      {
        ...at,
        path: `/${ts.time}`,
        value: rawTime,
      },
    );
  }
  if (instant.ms < received - window.maxAgeMs) {
    return rejection(
      'time',
      `is older than the gateway accepts (${Math.round(window.maxAgeMs / 3_600_000)} h before ${receivedAt.toISOString()})`,
      {
        ...at,
        path: `/${ts.time}`,
        value: rawTime,
      },
    );
  }
  // The subject of the reading's own time, not of the arrival: a buffer flushed after a move stays
  // with the resident it was measured at (issue 13 #4).
  let tags = deviceTags(device, schema, subjectAt(device, instant.ms));
  for (const name of ts.tags) {
    const value = reading[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value === '' || hasControlCharacter(value)) {
      return rejection('schema', 'must be a non-empty string without control characters', {
        ...at,
        path: `/${name}`,
      });
    }
    tags = { ...tags, [name]: value };
  }
  const fields: Record<string, FieldValue> = {};
  for (const f of ts.fields) {
    const value = reading[f.name];
    if (value === undefined) continue;
    // The validator has already checked each type; the checks keep the compiler and us honest.
    if (f.kind === 'integer' && Number.isSafeInteger(value))
      fields[f.name] = { kind: 'integer', value: value as number };
    else if (f.kind === 'float' && typeof value === 'number' && Number.isFinite(value))
      fields[f.name] = { kind: 'float', value };
    else if (f.kind === 'boolean' && typeof value === 'boolean') fields[f.name] = { kind: 'boolean', value };
    else if (f.kind === 'string' && typeof value === 'string') fields[f.name] = { kind: 'string', value };
    else
      return rejection('schema', `must be ${f.kind === 'float' ? 'a number' : `a ${f.kind}`}`, {
        ...at,
        path: `/${f.name}`,
      });
  }
  if (Object.keys(fields).length === 0) {
    return rejection('schema', `has none of the fields ${ts.fields.map((f) => f.name).join(', ')}`, at);
  }
  return { measurement: ts.measurement, tags, fields, timestampNs: instant.ns };
}
