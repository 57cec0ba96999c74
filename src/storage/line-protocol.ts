// Point → InfluxDB line protocol, written by us rather than by node-influx, so that escaping and
// field types are exactly right (DESIGN §6: node-influx leaves "\n" in tag values unescaped and
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

/** One line, without the trailing newline. Tags are sorted (InfluxDB's preferred order). */
export function toLine(p: Point): string {
  let line = escapeMeasurement(p.measurement);
  for (const key of Object.keys(p.tags).sort())
    line += `,${escapeKey(key)}=${escapeKey(p.tags[key] as string)}`;
  let sep = ' ';
  for (const [key, value] of Object.entries(p.fields)) {
    line += `${sep}${escapeKey(key)}=${formatField(value)}`;
    sep = ',';
  }
  return `${line} ${p.timestampNs}`;
}
