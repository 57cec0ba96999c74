// Point → InfluxDB line protocol, written by us rather than by node-influx, so that escaping and
// field types are exactly right (docs/architecture.md, Pitfalls: node-influx leaves "\n" in tag
// values unescaped and
// writes every untyped number as a float). Pure.
import type { FieldValue, Point } from './point.js';

// https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/#special-characters
const escapeMeasurement = (s: string) => s.replace(/[,\s\\]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
const escapeKey = (s: string) => s.replace(/[,=\s\\]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
const escapeString = (s: string) => s.replace(/["\\]/g, (c) => `\\${c}`);

function formatField(f: FieldValue): string {
  switch (f.kind) {
    case 'integer':
      return `${f.value}i`;
    case 'float': {
      // Always a float: "97" would be parsed as a float anyway, but keep one spelling for all.
      const text = String(f.value);
      return /[.eE]/.test(text) || text.includes('Infinity') ? text : `${text}.0`;
    }
    case 'boolean':
      return f.value ? 'true' : 'false';
    case 'string':
      return `"${escapeString(f.value)}"`;
  }
}

// Escaped "measurement,tag=value,..." by tags object: map.ts gives all points of a device the same
// frozen tags object, so the escaping and sorting happen once per device, not once per reading.
const seriesKeys = new WeakMap<object, { measurement: string; key: string }>();

function seriesKey(p: Point): string {
  const cached = seriesKeys.get(p.tags);
  if (cached && cached.measurement === p.measurement) return cached.key;
  let key = escapeMeasurement(p.measurement);
  for (const name of Object.keys(p.tags).sort())
    key += `,${escapeKey(name)}=${escapeKey(p.tags[name] as string)}`;
  if (Object.isFrozen(p.tags)) seriesKeys.set(p.tags, { measurement: p.measurement, key });
  return key;
}

// Field names come from the schemas: a handful, escaped once each.
const fieldKeys = new Map<string, string>();
function fieldKey(name: string): string {
  let escaped = fieldKeys.get(name);
  if (escaped === undefined) {
    escaped = escapeKey(name);
    if (fieldKeys.size < 10_000) fieldKeys.set(name, escaped);
  }
  return escaped;
}

/** One line, without the trailing newline. Tags are sorted (InfluxDB's preferred order). */
export function toLine(p: Point): string {
  let line = seriesKey(p);
  let sep = ' ';
  for (const key in p.fields) {
    line += `${sep}${fieldKey(key)}=${formatField(p.fields[key] as FieldValue)}`;
    sep = ',';
  }
  return `${line} ${p.timestampNs}`;
}
