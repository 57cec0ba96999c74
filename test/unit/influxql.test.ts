// The one InfluxQL client quotes every name and value the same way: a quote in a value can never
// end the literal and widen a statement (the research export's consent boundary depends on it).
import { expect, it } from 'vitest';
import { buildStatement } from '../../src/query/readings-stream.js';
import { queryUrl, quoteIdent, quoteString } from '../../src/storage/influxql.js';

it('quotes identifiers and string literals, escaping their quote and backslash', () => {
  expect(quoteIdent('spo2')).toBe('"spo2"');
  expect(quoteIdent('a"b\\c')).toBe('"a\\"b\\\\c"');
  expect(quoteString('ox-1')).toBe("'ox-1'");
  expect(quoteString("x' OR subject =~ /.*/ --")).toBe("'x\\' OR subject =~ /.*/ --'");
});

it('builds the /query URL with the database, millisecond epoch and optional chunking', () => {
  const target = { url: 'http://influx:8086', db: 'lab db' };
  expect(queryUrl(target, 'SELECT * FROM "m"')).toBe(
    'http://influx:8086/query?db=lab%20db&epoch=ms&q=SELECT%20*%20FROM%20%22m%22',
  );
  expect(queryUrl(target, 'SHOW DATABASES', 500)).toContain('&epoch=ms&chunked=true&chunk_size=500&q=');
});

it('selects the series tags and the schema tags beside the fields, in time order, quoting through the client', () => {
  const q = { includeSimulated: false } as Parameters<typeof buildStatement>[0];
  const t = {
    type: 'pulse-oximeter',
    measurement: 'pulse_oximeter',
    fields: ['spo2', 'pulse'],
    tags: ['probe'],
  };
  expect(buildStatement(q, t, { subject: 'P-001', fromMs: 1000, toMs: 2000 })).toBe(
    `SELECT "device_id", "schema_version", "provenance", "probe", "spo2", "pulse" FROM "pulse_oximeter" WHERE "subject" = 'P-001' AND "device_type" = 'pulse-oximeter' AND time >= 1000ms AND time < 2000ms AND "provenance" != 'simulated'`,
  );
});
