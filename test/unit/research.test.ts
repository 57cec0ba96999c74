import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAuditLog, verifyAuditLog } from '../../src/query/audit.js';
import { formatTime, timeValue } from '../../src/query/export-time.js';
import { devicePseudonym, pseudonym } from '../../src/query/pseudonym.js';
import { parseReadingsQuery } from '../../src/query/readings.js';
import { provenanceOf } from '../../src/query/readings-stream.js';
import { parseRegistry, serialiseRegistry } from '../../src/registry/file.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { addProject, issueToken, parseToken, revokeToken, setConsent } from '../../src/registry/research.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { loadSchemas } from '../../src/schemas/load.js';

const withProjects = addProject(
  addProject(EMPTY_REGISTRY, {
    id: 'sleep-study',
    from: '2026-01-01',
    to: '2026-12-31',
    types: ['bed-sensor', 'pulse-oximeter'],
  }),
  { id: 'falls', from: '2026-03-01', to: '2026-09-30', types: ['fall-detector'], fields: ['event'] },
);

describe('projects and consents', () => {
  it('gives each project its own 256-bit secret and round-trips through the registry file', () => {
    const [a, b] = withProjects.projects;
    expect(a?.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(a?.secret).not.toBe(b?.secret);
    expect(parseRegistry(serialiseRegistry(withProjects), 'lab.yaml')).toEqual(withProjects);
  });
  it('refuses bad periods, duplicates and unknown projects', () => {
    expect(() =>
      addProject(withProjects, { id: 'x', from: '2026-05-01', to: '2026-04-01', types: ['bed-sensor'] }),
    ).toThrow(/is after/);
    expect(() =>
      addProject(withProjects, { id: 'falls', from: '2026-01-01', to: '2026-02-01', types: ['bed-sensor'] }),
    ).toThrow(/already exists/);
    expect(() => setConsent(withProjects, 'nope', 'p-1', { on: '2026-01-01' })).toThrow(
      /project nope is not in the registry/,
    );
  });
  it('records consent from a date, its withdrawal, and a renewed consent', () => {
    let d = setConsent(withProjects, 'sleep-study', 'p-017', { on: '2026-02-01' });
    expect(() => setConsent(d, 'sleep-study', 'p-017', { on: '2026-02-02' })).toThrow(/already consented/);
    d = setConsent(d, 'sleep-study', 'p-017', { withdraw: true, on: '2026-06-30' });
    expect(d.projects[0]?.consents).toEqual([
      { subject: 'p-017', from: '2026-02-01', withdrawn: '2026-06-30' },
    ]);
    d = setConsent(d, 'sleep-study', 'p-017', { on: '2026-08-01' });
    expect(d.projects[0]?.consents).toEqual([{ subject: 'p-017', from: '2026-08-01' }]);
  });
});

describe('tokens', () => {
  it('stores only a hash that verifies the printed token, and can be revoked', async () => {
    const { data, token } = issueToken(withProjects, {
      project: 'falls',
      researcher: 'Dr. Jensen',
      expires: new Date('2027-01-01T00:00:00Z'),
    });
    const parsed = parseToken(token);
    expect(parsed?.id).toBe(data.tokens[0]?.id);
    expect(JSON.stringify(data)).not.toContain(parsed?.secret);
    expect(await createPasswordVerifier().verify(data.tokens[0]?.hash ?? '', parsed?.secret ?? '')).toBe(
      true,
    );
    expect(revokeToken(data, token).tokens[0]?.revoked).toBe(true);
    expect(parseToken('Bearer nonsense')).toBeUndefined();
    expect(() => parseRegistry(serialiseRegistry({ ...data, projects: [] }), 'lab.yaml')).toThrow(
      /token .* names project "falls", which is not under projects/,
    );
  });
});

describe('pseudonyms', () => {
  it('are stable within a project and differ across projects', () => {
    const [a, b] = withProjects.projects;
    expect(pseudonym(a?.secret ?? '', 'p-017')).toBe(pseudonym(a?.secret ?? '', 'p-017'));
    expect(pseudonym(a?.secret ?? '', 'p-017')).not.toBe(pseudonym(b?.secret ?? '', 'p-017'));
    expect(pseudonym(a?.secret ?? '', 'p-017')).not.toBe(pseudonym(a?.secret ?? '', 'p-018'));
    expect(pseudonym(a?.secret ?? '', 'p-017')).toMatch(/^s-[0-9a-f]{20}$/);
  });
});

describe('audit log', () => {
  const entry = (rows: number) => ({
    at: new Date().toISOString(),
    researcher: 'r',
    project: 'falls',
    via: 'api' as const,
    export: `e-${rows}`,
    event: 'export-ended' as const,
    status: 'finished' as const,
    rows,
  });
  it('detects a changed and a deleted entry', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-audit-')), 'audit.ndjson');
    const log = createAuditLog({ file });
    for (const n of [10, 20, 30]) await log.append(entry(n));
    // A second writer (a restarted gateway) continues the same chain.
    await createAuditLog({ file }).append(entry(40));
    expect(await verifyAuditLog(file)).toEqual({ entries: 4, legacy: 4, notes: [] });
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    writeFileSync(
      file,
      `${[lines[0], (lines[1] as string).replace('"rows":20', '"rows":2'), lines[2], lines[3]].join('\n')}\n`,
    );
    expect(await verifyAuditLog(file)).toMatchObject({ brokenAt: 3 });
    writeFileSync(file, `${[lines[0], lines[2], lines[3]].join('\n')}\n`);
    expect(await verifyAuditLog(file)).toMatchObject({ brokenAt: 2 });
  });
});

describe('parseReadingsQuery', () => {
  const schemas = loadSchemas(join(new URL('../../', import.meta.url).pathname, 'device-schemas'));
  const project = withProjects.projects[0] as NonNullable<(typeof withProjects.projects)[0]>;
  it.each([
    ['every', { every: '1h) fill(0); DROP MEASUREMENT x; --', fn: 'mean' as const }, /every must look like/],
    ['fn', { every: '1h', fn: 'sum("x")) --' as 'mean' }, /fn must be one of/],
  ])('refuses an InfluxQL fragment in %s even when a caller skips the route schema', (_n, extra, message) => {
    expect(() =>
      parseReadingsQuery(project, schemas, { type: 'pulse-oximeter', format: 'csv', ...extra }, 'UTC'),
    ).toThrow(message);
  });

  const sleep = { ...project, fields: [] };
  it.each([
    [{ type: 'pulse-oximeter', tags: 'room' }, /tag "room" is not a tag of pulse-oximeter; tags: probe/],
    [{ type: 'bed-sensor', tags: 'probe' }, /tag "probe" is not a tag of bed-sensor; tags: none/],
    [{ type: 'pulse-oximeter', fields: 'weight' }, /field "weight" is not released for pulse-oximeter/],
    [{ type: 'bed-sensor,fall-detector' }, /type must be one of the project's device types/],
    [
      { type: 'bed-sensor,pulse-oximeter', fields: 'spo2' },
      /none of the fields asked is released for bed-sensor/,
    ],
    [
      { type: 'bed-sensor,pulse-oximeter', fields: 'occupied,spo2', every: '1h', fn: 'mean' as const },
      /needs numeric fields/,
    ],
  ])('refuses %j with a reason (400)', (params, message) => {
    expect(() => parseReadingsQuery(sleep, schemas, { format: 'csv', ...params }, 'UTC')).toThrow(message);
  });

  it('stacks two types: the tags and fields of both as columns, each name once, typed by the aggregate', () => {
    const q = parseReadingsQuery(
      sleep,
      schemas,
      {
        type: 'pulse-oximeter,bed-sensor',
        fields: 'pulse,heartRate,spo2',
        every: '1h',
        fn: 'max',
      },
      'UTC',
    );
    expect(q.tags).toEqual(['probe']);
    expect(q.fields).toEqual([
      { name: 'spo2', kind: 'integer' },
      { name: 'pulse', kind: 'integer' },
      { name: 'heartRate', kind: 'integer' },
    ]);
    expect(q.types.map((t) => [t.type, t.fields, t.tags])).toEqual([
      ['pulse-oximeter', ['spo2', 'pulse'], ['probe']],
      ['bed-sensor', ['heartRate'], []],
    ]);
    expect(q).toMatchObject({ order: 'time', precision: 'ns', includeSimulated: false });
    const mean = parseReadingsQuery(
      sleep,
      schemas,
      {
        type: 'bed-sensor',
        fields: 'heartRate',
        every: '1h',
        fn: 'mean',
      },
      'UTC',
    );
    expect(mean.fields).toEqual([{ name: 'heartRate', kind: 'float' }]);
  });
});

describe('export time column', () => {
  it.each([
    ['2026-03-01T10:00:00.12345679Z', 'ns', '2026-03-01T10:00:00.123456790Z', 1772359200123456790n],
    ['2026-03-01T10:00:00Z', 'ns', '2026-03-01T10:00:00.000000000Z', 1772359200000000000n],
    ['2026-03-01T10:00:00.123456789Z', 'us', '2026-03-01T10:00:00.123456Z', 1772359200123456n],
    ['2026-03-01T10:00:00.123456789Z', 'ms', '2026-03-01T10:00:00.123Z', 1772359200123n],
    ['2026-03-01T10:00:00.987Z', 's', '2026-03-01T10:00:00Z', 1772359200n],
  ] as const)('%s at %s is %s (%s units)', (influx, precision, text, value) => {
    expect(formatTime(influx, precision)).toBe(text);
    expect(timeValue(text, precision)).toBe(value);
  });
});

describe('device pseudonyms', () => {
  it('are per project, never the id, and never equal to the subject pseudonym of the same string', () => {
    const [a, b] = withProjects.projects.map((p) => p.secret);
    expect(devicePseudonym(a as string, 'bed-1')).toMatch(/^d-[0-9a-f]{20}$/);
    expect(devicePseudonym(a as string, 'bed-1')).not.toBe(devicePseudonym(b as string, 'bed-1'));
    expect(devicePseudonym(a as string, 'bed-1').slice(2)).not.toBe(pseudonym(a as string, 'bed-1').slice(2));
  });
});

describe('provenance of a reading', () => {
  const simulated = new Set(['sim-1']);
  it.each([
    ['simulated', 'bed-1', 'simulated'],
    ['real', 'sim-1', 'real'],
    [null, 'sim-1', 'simulated'],
    [null, 'bed-1', 'real'],
    ['', 'sim-1', 'simulated'],
    [null, null, 'real'],
  ] as const)(
    'tag %j on device %j is %s (the registry decides for untagged, older points)',
    (tag, device, out) => {
      expect(provenanceOf(tag, device, simulated)).toBe(out);
    },
  );
});
