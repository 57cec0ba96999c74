// The research export reads dates as the lab's days: a project's period and a consent start at the
// lab's midnight, and aggregation windows are aligned to it with a tz() clause whose zone name is
// checked before it goes into InfluxQL.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consentedWindows, parseReadingsQuery } from '../../src/query/readings.js';
import { buildAggregateStatement, buildStatement } from '../../src/query/readings-stream.js';
import { addProject, setConsent } from '../../src/registry/research.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { loadSchemas } from '../../src/schemas/load.js';

const schemas = loadSchemas(join(new URL('../../', import.meta.url).pathname, 'device-schemas'));
const data = setConsent(
  addProject(EMPTY_REGISTRY, { id: 'sleep', from: '2026-03-20', to: '2026-10-25', types: ['bed-sensor'] }),
  'sleep',
  'p-1',
  { on: '2026-03-29' },
);
const project = data.projects[0] as NonNullable<(typeof data.projects)[0]>;
const iso = (ms: number) => new Date(ms).toISOString();
const query = (zone: string, extra: Record<string, string> = {}) =>
  parseReadingsQuery(project, schemas, { type: 'bed-sensor', format: 'csv', ...extra }, zone);

describe('a project period in the lab time zone', () => {
  it('runs from the local midnight of its first day to the one after its last (Europe/Copenhagen)', () => {
    const q = query('Europe/Copenhagen');
    // CET on 20 March, CEST until the night of 25 October, whose day has 25 hours.
    expect([iso(q.fromMs), iso(q.toMs)]).toEqual(['2026-03-19T23:00:00.000Z', '2026-10-25T23:00:00.000Z']);
  });

  it('is UTC days with timezone UTC', () => {
    const q = query('UTC');
    expect([iso(q.fromMs), iso(q.toMs)]).toEqual(['2026-03-20T00:00:00.000Z', '2026-10-26T00:00:00.000Z']);
  });

  it('starts a consent at the local midnight of its date (23:00Z before a spring-forward day)', () => {
    expect(consentedWindows(project, query('Europe/Copenhagen')).map((w) => iso(w.fromMs))).toEqual([
      '2026-03-28T23:00:00.000Z',
    ]);
  });
});

describe('aggregation windows', () => {
  const w = { subject: 'p-1', fromMs: 1000, toMs: 2000 };
  it('aligns them to the lab time zone with tz()', () => {
    // tz() closes the statement (InfluxQL takes it after GROUP BY, fill and any LIMIT).
    const q = query('Europe/Copenhagen', { every: '1d', fn: 'count' });
    const statement = buildAggregateStatement(q, q.types[0] as (typeof q.types)[0], w, {
      device_id: 'bed-1',
    });
    expect(statement).toMatch(/ GROUP BY time\(1d\)[^']* tz\('Europe\/Copenhagen'\)$/);
  });

  it('writes no tz() for raw readings', () => {
    const q = query('Europe/Copenhagen');
    expect(buildStatement(q, q.types[0] as (typeof q.types)[0], w)).not.toContain('tz(');
  });

  it.each(["Europe/Copenhagen') --", 'Europe/../x', "x'", ''])('refuses the zone name %j', (zone) => {
    const q = { ...query('UTC', { every: '1d', fn: 'count' }), timeZone: zone };
    expect(() => buildAggregateStatement(q, q.types[0] as (typeof q.types)[0], w, {})).toThrow(
      /is not a time zone name/,
    );
  });
});
