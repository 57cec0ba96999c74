import { describe, expect, it } from 'vitest';
import { bundledSchemasDir } from '../../src/config/load.js';
import { toPoint } from '../../src/ingest/map.js';
import { parseTopic } from '../../src/ingest/route.js';
import { nsToIso, parseRfc3339, parseRfc3339Ns } from '../../src/ingest/time.js';
import { validatePayload } from '../../src/ingest/validate.js';
import type { Device } from '../../src/registry/types.js';
import { loadSchemas } from '../../src/schemas/load.js';
import { toLine } from '../../src/storage/line-protocol.js';

const schemas = loadSchemas(bundledSchemasDir());
const ox = schemas.get('pulse-oximeter', 1);
if (!ox) throw new Error('pulse-oximeter@1 missing');
const device: Device = {
  id: 'ox-0001',
  type: 'pulse-oximeter',
  schemaVersion: 1,
  site: 'odense',
  vendor: 'acme',
  assignments: [{ subject: 'p-017' }],
  enabled: true,
  passwordHash: '$7$',
};
const LIMITS = { maxBatchReadings: 1000 };
const WINDOW = { maxFutureMs: 300_000, maxAgeMs: 7 * 86_400_000 };
const NOW = new Date('2026-11-22T10:05:00Z');

describe('parseRfc3339Ns', () => {
  it.each([
    ['2026-11-22T10:00:00Z', 1795341600000000000n],
    ['2026-11-22T10:00:00.123456789Z', 1795341600123456789n],
    ['2026-11-22T10:00:00.1Z', 1795341600100000000n],
    ['2026-11-22T11:00:00+01:00', 1795341600000000000n],
    ['2026-11-22t10:00:00z', 1795341600000000000n],
  ])('%s → %s ns', (text, ns) => {
    expect(parseRfc3339Ns(text)).toBe(ns);
  });
  it.each(['2026-11-22', '2026-11-22T10:00:00', 'yesterday', '2026-13-40T10:00:00Z'])(
    'refuses %s',
    (text) => {
      expect(parseRfc3339Ns(text)).toBeUndefined();
    },
  );
  it.each([
    ['2026-11-22T10:00:00.123456789Z', 1795341600123, 456789],
    ['1970-01-01T00:00:00.000000001Z', 0, 1],
    ['1969-12-31T23:59:59.5Z', -500, 0],
    ['2016-12-31T23:59:60Z', 1483228799999, 999999],
  ])('splits %s into ms %s and %s ns, with the exact ns string', (text, ms, sub) => {
    const instant = parseRfc3339(text);
    expect(instant).toMatchObject({ ms, subMsNs: sub });
    expect(BigInt(instant?.ns ?? 'x')).toBe(BigInt(ms) * 1_000_000n + BigInt(sub));
  });
  it('formats nanoseconds back to RFC 3339', () => {
    expect(nsToIso(1795341600123456789n)).toBe('2026-11-22T10:00:00.123456789Z');
  });
});

describe('parseTopic', () => {
  it.each([
    ['lab/odense/pulse-oximeter/ox-0001/telemetry', 'telemetry'],
    ['lab/odense/pulse-oximeter/ox-0001/status', 'status'],
  ])('routes %s to %s', (topic, channel) => {
    const route = parseTopic(topic, device, schemas);
    expect('reason' in route ? route : route.channel).toBe(channel);
  });
  it.each([
    ['lab/odense/pulse-oximeter/ox-0001/vitals', /unknown channel "vitals"/],
    ['lab/odense/pulse-oximeter/ox-0001/telemetry/extra', /topic must be/],
    ['lab/odense/pulse-oximeter/ox-0001/event', /published on \.\.\.\/telemetry, not \.\.\.\/event/],
  ])('rejects %s with reason topic', (topic, message) => {
    const route = parseTopic(topic, device, schemas);
    expect(route).toMatchObject({ reason: 'topic' });
    expect('errors' in route ? route.errors[0]?.message : '').toMatch(message);
  });
  it('rejects a device whose schema version is not loaded', () => {
    expect(
      parseTopic('lab/odense/pulse-oximeter/ox-0001/telemetry', { ...device, schemaVersion: 9 }, schemas),
    ).toMatchObject({
      reason: 'topic',
      errors: [{ message: expect.stringContaining('pulse-oximeter@9') }],
    });
  });
});

describe('validatePayload', () => {
  const v = (text: string, limits = LIMITS) => validatePayload(Buffer.from(text), ox, limits);

  it('accepts one reading as index 0', () => {
    const r = v('{"ts":"2026-11-22T10:00:00Z","spo2":97,"pulse":72}');
    expect(r.rejections).toEqual([]);
    expect(r.readings).toEqual([{ index: 0, value: { ts: '2026-11-22T10:00:00Z', spo2: 97, pulse: 72 } }]);
  });
  it.each([
    ['not JSON', '{"spo2":', 'json'],
    ['empty', '', 'json'],
    ['null', 'null', 'schema'],
    ['an array', '[1,2]', 'schema'],
    ['a string', '"hello"', 'schema'],
  ])('rejects %s with reason %s', (_n, text, reason) => {
    expect(v(text).rejections).toMatchObject([{ reason, schema: 'pulse-oximeter@1' }]);
  });
  it('names every problem of a reading with its path and value', () => {
    const r = v('{"ts":"noon","spo2":104,"pulse":72.5,"probe":"toe","colour":"red"}');
    expect(r.rejections[0]?.errors).toEqual([
      { path: '/colour', message: 'is not a property of this device type', value: 'red' },
      { path: '/ts', message: 'must be an RFC 3339 date-time such as 2026-11-22T10:00:00Z', value: 'noon' },
      { path: '/spo2', message: 'must be <= 100', value: 104 },
      { path: '/pulse', message: 'must be integer', value: 72.5 },
      { path: '/probe', message: 'must be one of: finger, ear, wrist, forehead', value: 'toe' },
    ]);
  });
  it('cuts a path named after a very long property of the payload to 200 characters', () => {
    const name = 'x'.repeat(100_000);
    const r = v(`{"ts":"2026-11-22T10:00:00Z","spo2":97,"pulse":72,"${name}":1}`);
    expect(r.rejections[0]?.errors).toEqual([
      { path: `/${'x'.repeat(199)}…`, message: 'is not a property of this device type', value: 1 },
    ]);
  });
  it('never echoes nested structures back', () => {
    const r = v('{"ts":"2026-11-22T10:00:00Z","spo2":{"a":[1,2,3]},"pulse":72}');
    expect(r.rejections[0]?.errors).toEqual([{ path: '/spo2', message: 'must be integer' }]);
  });
  it('judges each reading of a batch alone', () => {
    const r = v(
      '{"readings":[{"ts":"2026-11-22T10:00:00Z","spo2":97,"pulse":72},{"ts":"2026-11-22T10:01:00Z","spo2":101,"pulse":72}]}',
    );
    expect(r.readings.map((x) => x.index)).toEqual([0]);
    expect(r.rejections).toMatchObject([{ reason: 'schema', readingIndex: 1 }]);
  });
  it('refuses a batch with other keys, none or too many readings', () => {
    expect(v('{"readings":[],"x":1}').rejections).toMatchObject([
      { reason: 'schema', errors: [{ path: '/x' }] },
    ]);
    expect(v('{"readings":[]}').rejections).toMatchObject([
      { reason: 'schema', errors: [{ path: '/readings' }] },
    ]);
    expect(v('{"readings":[{},{},{}]}', { maxBatchReadings: 2 }).rejections).toMatchObject([
      { reason: 'too-large' },
    ]);
  });
  it('treats a __proto__ key as an unknown property, without polluting anything', () => {
    const r = v('{"__proto__":{"admin":true},"ts":"2026-11-22T10:00:00Z","spo2":97,"pulse":72}');
    expect(r.rejections[0]?.errors).toEqual([
      { path: '/__proto__', message: 'is not a property of this device type' },
    ]);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
  it('rejects an array nested 200,000 deep as schema (not a reading object), without throwing', () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    expect(v(deep).rejections).toMatchObject([{ reason: 'schema' }]);
    // Cut short, the same nesting is refused as json.
    expect(v(deep.slice(0, 300_000)).rejections).toMatchObject([{ reason: 'json' }]);
  });
});

describe('toPoint', () => {
  const reading = {
    ts: '2026-11-22T10:00:00.000000123Z',
    spo2: 97,
    pulse: 72,
    perfusionIndex: 3,
    probe: 'finger',
  };
  it('builds the exact point: registry tags, schema tags, typed fields, ns timestamp', () => {
    expect(toPoint(reading, 0, ox, device, NOW, WINDOW)).toEqual({
      measurement: 'pulse_oximeter',
      tags: {
        site: 'odense',
        device_type: 'pulse-oximeter',
        device_id: 'ox-0001',
        schema_version: '1',
        provenance: 'real',
        subject: 'p-017',
        probe: 'finger',
      },
      fields: {
        spo2: { kind: 'integer', value: 97 },
        pulse: { kind: 'integer', value: 72 },
        perfusionIndex: { kind: 'float', value: 3 },
      },
      timestampNs: '1795341600000000123',
    });
  });
  it('leaves out the subject tag for a device with no assignment', () => {
    const p = toPoint(reading, 0, ox, { ...device, assignments: [] }, NOW, WINDOW);
    expect('tags' in p && p.tags).not.toHaveProperty('subject');
  });
  it('tags each reading with the subject of its own time, not of its arrival (issue 13 #4)', () => {
    const moved: Device = {
      ...device,
      assignments: [
        { subject: 'p-005', to: '2026-11-22T08:00:00Z' },
        { subject: 'p-006', from: '2026-11-22T09:00:00Z' },
      ],
    };
    const subjectOf = (ts: string) => {
      const p = toPoint({ ...reading, ts }, 0, ox, moved, NOW, WINDOW);
      if (!('tags' in p)) throw new Error('rejected');
      return p.tags.subject;
    };
    expect(subjectOf('2026-11-22T07:59:59.999999999Z')).toBe('p-005');
    expect(subjectOf('2026-11-22T08:00:00Z')).toBeUndefined();
    expect(subjectOf('2026-11-22T08:59:59.999Z')).toBeUndefined();
    expect(subjectOf('2026-11-22T09:00:00Z')).toBe('p-006');
    expect(subjectOf('2026-11-22T10:00:00Z')).toBe('p-006');
  });
  it.each([
    ['6 minutes ahead', '2026-11-22T10:11:00.001Z', 'time'],
    ['8 days old', '2026-11-14T10:04:59Z', 'time'],
    ['1 ns past the future edge', '2026-11-22T10:10:00.000000001Z', 'time'],
    ['1 ns before the oldest edge', '2026-11-15T10:04:59.999999999Z', 'time'],
  ])('rejects a reading %s with reason time', (_n, ts, reason) => {
    expect(toPoint({ ...reading, ts }, 3, ox, device, NOW, WINDOW)).toMatchObject({
      reason,
      readingIndex: 3,
      errors: [{ path: '/ts', value: ts }],
    });
  });
  it('accepts a reading exactly at the edge of the window', () => {
    expect(toPoint({ ...reading, ts: '2026-11-22T10:10:00Z' }, 0, ox, device, NOW, WINDOW)).toHaveProperty(
      'measurement',
    );
    expect(toPoint({ ...reading, ts: '2026-11-15T10:05:00Z' }, 0, ox, device, NOW, WINDOW)).toHaveProperty(
      'measurement',
    );
  });
  it("gives each device its own series key while reusing it across that device's points", () => {
    const other = { ...device, id: 'ox-2', assignments: [{ subject: 'p-0002' }] };
    const lines = [device, other, device].map((d) => {
      const point = toPoint(reading, 0, ox, d, NOW, WINDOW);
      if (!('tags' in point)) throw new Error('rejected');
      return toLine(point).split(' ')[0];
    });
    expect(lines[0]).toBe(lines[2]);
    expect(lines[1]).toContain('device_id=ox-2');
    expect(lines[1]).toContain('subject=p-0002');
    expect(lines[0]).not.toContain('ox-2');
  });
  it('refuses a tag value with a newline (it would split the line protocol)', () => {
    const room = schemas.get('room-climate', 1);
    if (!room) throw new Error('room-climate missing');
    const r = toPoint(
      { ts: '2026-11-22T10:00:00Z', temperature: 21, humidity: 40, room: 'hall\nx' },
      0,
      room,
      { ...device, type: 'room-climate' },
      NOW,
      WINDOW,
    );
    expect(r).toMatchObject({ reason: 'schema', errors: [{ path: '/room' }] });
  });
});
