// The research API against data written through the gateway into a real influxd.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditHeadFile, verifyAuditLog } from '../../src/query/audit.js';
import { addProject, issueToken, revokeToken, setConsent } from '../../src/registry/research.js';
import { loadAuditKey } from '../../src/registry/secrets-file.js';
import type { RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { ndjson, openProject, untilTokens } from '../helpers/research.js';

const tokens: Record<string, string> = {};
const DAY = 86_400_000;
// Dates from one "now" taken when the file loads: a run across UTC midnight sees one today.
const TODAY = Date.now();
const day = (offset: number) => new Date(TODAY + offset * DAY).toISOString().slice(0, 10);
const HOURS = 96;
const start = Math.floor((Date.now() - HOURS * 3_600_000) / 3_600_000) * 3_600_000;

const lab = useLab({
  devices: [
    { id: 'bed-1', type: 'bed-sensor', site: 'home-1', subject: 'p-1' },
    { id: 'bed-2', type: 'bed-sensor', site: 'home-2', subject: 'p-2' },
    { id: 'bed-3', type: 'bed-sensor', site: 'home-3', subject: 'p-3' },
    { id: 'scale-1', type: 'weight-scale', site: 'home-1', subject: 'p-1' },
  ],
});
beforeAll(async () => {
  for (const [id, site] of [
    ['bed-1', 'home-1'],
    ['bed-2', 'home-2'],
    ['bed-3', 'home-3'],
  ] as const) {
    const c = await connectDevice(lab.gw.mqttUrl, id);
    const readings = Array.from({ length: HOURS }, (_, h) => ({
      ts: new Date(start + h * 3_600_000).toISOString(),
      occupied: true,
      heartRate: 50 + ((h * 7) % 23),
      respirationRate: 12 + (h % 5),
    }));
    await c.publishAsync(`lab/${site}/bed-sensor/${id}/telemetry`, JSON.stringify({ readings }), { qos: 1 });
    await c.endAsync();
  }
  const scale = await connectDevice(lab.gw.mqttUrl, 'scale-1');
  await scale.publishAsync(
    'lab/home-1/weight-scale/scale-1/telemetry',
    JSON.stringify({ ts: new Date(start).toISOString(), weight: 70.5 }),
    { qos: 1 },
  );
  await scale.endAsync();
  await lab.gw.app.drain.idle(10_000);
  // Project A: bed sensors, heart rate only; p-1 consented two days ago, p-3 consented then withdrew,
  // p-2 never consented. Project B: the same p-1, to compare pseudonyms.
  await lab.gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, openProject('sleep-a', ['bed-sensor'], ['heartRate']));
    d = addProject(d, { id: 'sleep-b', from: day(-10), to: day(1), types: ['bed-sensor'] });
    d = setConsent(d, 'sleep-a', 'p-1', { on: day(-2) });
    d = setConsent(d, 'sleep-a', 'p-3', { on: day(-10) });
    d = setConsent(d, 'sleep-a', 'p-3', { withdraw: true, on: day(0) });
    d = setConsent(d, 'sleep-b', 'p-1', { on: day(-10) });
    const issue = (name: string, project: string, expires: number) => {
      const r = issueToken(d, { project, researcher: name, expires: new Date(Date.now() + expires) });
      d = r.data;
      tokens[name] = r.token;
    };
    issue('a', 'sleep-a', DAY);
    issue('b', 'sleep-b', DAY);
    issue('expired', 'sleep-a', -1000);
    issue('revoked', 'sleep-a', DAY);
    return revokeToken(d, tokens.revoked as string);
  });
  await untilTokens(lab.gw, 4);
});

const get = (path: string, token?: string) =>
  fetch(
    `http://127.0.0.1:${lab.gw.app.httpPort}${path}`,
    token ? { headers: { authorization: `Bearer ${token}` } } : {},
  );

describe('GET /api/v1/projects/{id}/readings', () => {
  it('returns only consented subjects, from their consent, only released fields, as pseudonyms', async () => {
    const res = await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=ndjson', tokens.a);
    expect(res.status).toBe(200);
    const rows = await ndjson(res);
    const consentFrom = Date.parse(`${day(-2)}T00:00:00Z`);
    const expected = Array.from({ length: HOURS }, (_, h) => start + h * 3_600_000).filter(
      (t) => t >= consentFrom,
    );
    expect(rows).toHaveLength(expected.length);
    expect(new Set(rows.map((r) => r.subject)).size).toBe(1);
    expect(Object.keys(rows[0] ?? {})).toEqual([
      'time',
      'subject',
      'device',
      'device_type',
      'schema_version',
      'provenance',
      'heartRate',
    ]);
    expect(rows.map((r) => Date.parse(r.time as string))).toEqual(expected);
    const text = JSON.stringify(rows);
    for (const secret of ['p-1', 'p-2', 'p-3', 'bed-1', 'home-1']) expect(text).not.toContain(secret);
  });

  it('gives stable pseudonyms within a project and different ones across projects', async () => {
    const a1 = (
      await ndjson(await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=ndjson', tokens.a))
    )[0]?.subject;
    const a2 = (
      await ndjson(await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=ndjson', tokens.a))
    )[0]?.subject;
    const b = (
      await ndjson(await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&format=ndjson', tokens.b))
    )[0]?.subject;
    expect(a1).toBe(a2);
    expect(b).toMatch(/^s-[0-9a-f]{20}$/);
    expect(b).not.toBe(a1);
  });

  it('serves CSV and a JSON array', async () => {
    const path = '/api/v1/projects/sleep-a/readings?type=bed-sensor&format=';
    const rows = await ndjson(await get(`${path}ndjson`, tokens.a));
    expect(rows.length).toBeGreaterThan(24);
    const csv = await (await get(`${path}csv`, tokens.a)).text();
    const [header, ...lines] = csv.trim().split('\n');
    expect(header).toBe('time,subject,device,device_type,schema_version,provenance,heartRate');
    // The same rows, value for value, in all three formats.
    expect(lines).toEqual(
      rows.map((r) => `${r.time},${r.subject},${r.device},bed-sensor,1,real,${r.heartRate}`),
    );
    const json = (await (await get(`${path}json`, tokens.a)).json()) as unknown[];
    expect(json).toEqual(rows);
  });

  it('aggregates: the daily mean equals the mean computed from the raw rows', async () => {
    const raw = await ndjson(
      await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&fields=heartRate&format=ndjson', tokens.b),
    );
    const agg = await ndjson(
      await get(
        '/api/v1/projects/sleep-b/readings?type=bed-sensor&fields=heartRate&every=1d&fn=mean&format=ndjson',
        tokens.b,
      ),
    );
    const byDay = new Map<string, number[]>();
    for (const r of raw) {
      const d = (r.time as string).slice(0, 10);
      byDay.set(d, [...(byDay.get(d) ?? []), r.heartRate as number]);
    }
    expect(agg).toHaveLength(byDay.size);
    for (const a of agg) {
      const values = byDay.get((a.time as string).slice(0, 10)) ?? [];
      expect(a.heartRate as number).toBeCloseTo(values.reduce((x, y) => x + y, 0) / values.length, 9);
    }
  });

  it.each([
    ['no token', undefined, 'sleep-a', 401],
    ['an unknown token', 'll_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAA', 'sleep-a', 401],
    ['an expired token', 'expired', 'sleep-a', 401],
    ['a revoked token', 'revoked', 'sleep-a', 401],
    ["project A's token on project B", 'a', 'sleep-b', 403],
  ])('answers %s with %i', async (_name, token, project, status) => {
    const t = token && token in tokens ? tokens[token] : token;
    const res = await get(`/api/v1/projects/${project}/readings?type=bed-sensor`, t);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: string }).error.length).toBeGreaterThan(5);
  });

  it.each([
    ['a device type outside the project', 'type=weight-scale'],
    ['an unreleased field', 'type=bed-sensor&fields=respirationRate'],
    ['an unknown field', 'type=bed-sensor&fields=heartRate,bogus'],
    ['an InfluxQL fragment', `type=${encodeURIComponent("bed-sensor' OR 1=1 --")}`],
    ['a quote in a field', `type=bed-sensor&fields=${encodeURIComponent('heartRate"; DROP DATABASE x')}`],
    ['a regex', `type=${encodeURIComponent('/.*/')}`],
    ['a bad time', 'type=bed-sensor&from=yesterday'],
    ['a range outside the project', 'type=bed-sensor&from=2000-01-01T00:00:00Z&to=2000-02-01T00:00:00Z'],
    ['a bad window', `type=bed-sensor&every=${encodeURIComponent('1h); DROP')}&fn=mean`],
    ['an unknown function', 'type=bed-sensor&every=1h&fn=sum'],
    ['every without fn', 'type=bed-sensor&every=1h'],
    ['an unknown format', 'type=bed-sensor&format=xml'],
    ['a repeated parameter', 'type=bed-sensor&type=bed-sensor'],
  ])('refuses %s with 400 and changes nothing', async (_name, qs) => {
    const res = await get(`/api/v1/projects/sleep-a/readings?${qs}`, tokens.a);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBeTruthy();
    const still = await lab.influx.query<{ count: number }>(
      lab.gw.db,
      'SELECT count(heartRate) FROM bed_sensor',
    );
    expect(still[0]?.count).toBe(3 * HOURS);
  });

  it('writes every export to a sealed audit log with its row count', async () => {
    const file = join(lab.gw.dir, 'data', 'audit.ndjson');
    const { readFile } = await import('node:fs/promises');
    const entries = async () =>
      (await readFile(file, 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Its own export, after whatever earlier tests wrote.
    const before = (await entries()).length;
    const rows = await ndjson(
      await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&format=ndjson', tokens.b),
    );
    expect(rows.length).toBeGreaterThan(0);
    // Earlier exports may still be ending: match the entries by this export's id.
    const isMine = (e: Record<string, unknown>) => e.researcher === 'b' && e.event === 'export-started';
    const mine = await eventually(
      async () => (await entries()).slice(before),
      (l) => {
        const id = l.find(isMine)?.export;
        return l.some((e) => e.event === 'export-ended' && e.export === id);
      },
    );
    const started = mine.find(isMine);
    expect(started).toMatchObject({
      project: 'sleep-b',
      via: 'api',
      query: expect.objectContaining({ type: 'bed-sensor', format: 'ndjson' }),
    });
    expect(mine.find((e) => e.event === 'export-ended' && e.export === started?.export)).toMatchObject({
      status: 'finished',
      rows: rows.length,
    });
    const r = await verifyAuditLog(file, {
      key: await loadAuditKey(lab.gw.registryFile),
      headFile: auditHeadFile(lab.gw.registryFile),
    });
    expect(r.brokenAt).toBeUndefined();
    expect(r.sealedFrom).toBe(1);
    expect(r.entries).toBeGreaterThanOrEqual(before + 2);
  });
});

describe('dictionary, subjects and devices', () => {
  it('serves the data dictionary generated from the schemas', async () => {
    const body = (await (await get('/api/v1/dictionary')).json()) as { fields: Record<string, unknown>[] };
    expect(body.fields).toContainEqual({
      measurement: 'pulse_oximeter',
      field: 'spo2',
      kind: 'integer',
      unit: '%',
      description: 'Peripheral oxygen saturation, SpO2 (MDC_PULS_OXIM_SAT_O2)',
      deviceTypes: ['pulse-oximeter'],
      schemaVersions: ['pulse-oximeter@1'],
      loinc: ['59408-5', '2708-6'],
      mdc: '150456',
      npu: 'NPU03011',
      fhir: true,
    });
    expect(body.fields.length).toBeGreaterThan(30);
  });

  it('lists a project subjects and devices as pseudonyms and device types, never ids', async () => {
    const subjects = (await (await get('/api/v1/projects/sleep-a/subjects', tokens.a)).json()) as {
      subjects: { subject: string }[];
    };
    const rows = await ndjson(
      await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=ndjson', tokens.a),
    );
    expect(subjects.subjects.map((s) => s.subject)).toEqual([rows[0]?.subject]);
    const devices = await (await get('/api/v1/projects/sleep-a/devices', tokens.a)).json();
    expect(devices).toEqual({
      project: 'sleep-a',
      devices: [
        { subject: rows[0]?.subject, device: rows[0]?.device, deviceType: 'bed-sensor', schemaVersion: 1 },
      ],
    });
    expect(JSON.stringify(devices)).not.toMatch(/bed-1|p-1|home-1/);
    expect((await get('/api/v1/projects/sleep-b/devices', tokens.a)).status).toBe(403);
  });
});

describe('livinglab export', () => {
  it('writes the same rows as the API to a file, audited as "api" (the server decides, not the client)', async () => {
    const { readFile } = await import('node:fs/promises');
    const out = join(lab.gw.dir, 'export.csv');
    const env = { LIVINGLAB_TOKEN: tokens.a };
    const { stderr } = await runCli(
      [
        'export',
        '--project',
        'sleep-a',
        '--type',
        'bed-sensor',
        '--out',
        out,
        '--url',
        `http://127.0.0.1:${lab.gw.app.httpPort}`,
      ],
      { env },
    );
    const api = await (
      await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=csv', tokens.a)
    ).text();
    expect(await readFile(out, 'utf8')).toBe(api);
    // Rows, not lines: the header is not a row.
    expect(stderr).toContain(`exported ${api.trim().split('\n').length - 1} rows to ${out}`);
    const audit = (await readFile(join(lab.gw.dir, 'data', 'audit.ndjson'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { via?: string; export?: string });
    const id = /audit log export ([0-9a-f-]+)/.exec(stderr)?.[1];
    expect(audit.filter((e) => e.export === id).map((e) => e.via)).toEqual(['api', 'api']);
    const refused = await runCli(
      [
        'export',
        '--project',
        'sleep-b',
        '--type',
        'bed-sensor',
        '--url',
        `http://127.0.0.1:${lab.gw.app.httpPort}`,
      ],
      { env },
    );
    expect(refused).toMatchObject({ code: 2, stderr: expect.stringContaining('export refused (HTTP 403)') });
  });
  it('offers every format of the API, arrow included, and counts rows, not lines', {
    timeout: 90_000,
  }, async () => {
    const { readFile } = await import('node:fs/promises');
    const { tableFromIPC } = await import('apache-arrow');
    const api = await ndjson(
      await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&format=ndjson', tokens.b),
    );
    // csv is counted in the test above; a JSON array and Arrow have no row per line.
    for (const format of ['json', 'arrow']) {
      const out = join(lab.gw.dir, `export.${format}`);
      const { code, stderr } = await runCli(
        [
          'export',
          '--project',
          'sleep-b',
          '--type',
          'bed-sensor',
          '--format',
          format,
          '--precision',
          'ms',
          '--order',
          'subject',
          '--include-simulated',
          '--out',
          out,
          '--url',
          `http://127.0.0.1:${lab.gw.app.httpPort}`,
        ],
        { env: { LIVINGLAB_TOKEN: tokens.b } },
      );
      expect(code).toBe(0);
      expect(stderr).toContain(`exported ${api.length} rows to ${out}`);
      if (format === 'arrow') {
        const table = tableFromIPC(await readFile(out));
        expect(table.numRows).toBe(api.length);
        expect(String(table.schema.fields[0]?.type)).toBe('Timestamp<MILLISECOND, UTC>');
      } else {
        const rows = JSON.parse(await readFile(out, 'utf8')) as { time: string }[];
        // The flags reach the API: --precision ms gives three fraction digits.
        expect(rows.map((r) => r.time)).toEqual(api.map((r) => (r.time as string).replace(/\d{6}Z$/, 'Z')));
      }
    }
    const wrong = await runCli(
      ['export', '--project', 'sleep-b', '--type', 'bed-sensor', '--format', 'xml'],
      {
        env: { LIVINGLAB_TOKEN: tokens.b },
      },
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/Allowed choices are csv, ndjson, json, arrow/);
  });
});

describe('Arrow IPC and the API description', () => {
  it('serves the same rows as an Arrow IPC stream that pyarrow/R can open', async () => {
    const { tableFromIPC } = await import('apache-arrow');
    const res = await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&format=arrow', tokens.b);
    expect(res.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    const rows = await ndjson(
      await get('/api/v1/projects/sleep-b/readings?type=bed-sensor&format=ndjson', tokens.b),
    );
    expect(table.numRows).toBe(rows.length);
    expect(table.schema.fields.map((f) => f.name)).toEqual([
      'time',
      'subject',
      'device',
      'device_type',
      'schema_version',
      'provenance',
      'occupied',
      'heartRate',
      'respirationRate',
      'movement',
    ]);
    const first = table.get(0)?.toJSON() as Record<string, unknown>;
    expect(first.subject).toBe(rows[0]?.subject);
    // An integer field is Int64 (a BigInt in JS), not a float.
    expect(first.heartRate).toBe(BigInt(rows[0]?.heartRate as number));
    // Nanoseconds since the epoch, exact (a JS number of milliseconds would not be).
    expect(table.getChild('time')?.data[0]?.values[0]).toBe(
      BigInt(Date.parse(rows[0]?.time as string)) * 1_000_000n,
    );
  });

  it('describes itself at /openapi.json and on a readable /docs page', async () => {
    const spec = (await (await get('/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual([
      '/api/v1/dictionary',
      '/api/v1/projects/{id}/subjects',
      '/api/v1/projects/{id}/devices',
      '/api/v1/projects/{id}/readings',
    ]);
    const docs = await get('/docs');
    expect(docs.headers.get('content-type')).toContain('text/html');
    expect(await docs.text()).toContain('<code>GET /api/v1/projects/{id}/readings</code>');
  });
});

describe('one definition for the checks and the description (issue 14)', () => {
  type Param = { name: string; in: string; required?: boolean };
  const specParams = async (path: string) => {
    const spec = (await (await get('/openapi.json')).json()) as {
      paths: Record<string, { get: { parameters?: Param[] } }>;
    };
    return (spec.paths[path]?.get.parameters ?? []).filter((p) => p.in === 'query');
  };

  it('takes every query parameter /openapi.json declares, and refuses one it does not, naming the declared ones', async () => {
    const declared = await specParams('/api/v1/projects/{id}/readings');
    const values: Record<string, string> = {
      type: 'bed-sensor',
      fields: 'heartRate',
      from: `${day(-2)}T00:00:00Z`,
      to: `${day(1)}T00:00:00Z`,
      every: '1d',
      fn: 'mean',
      order: 'subject',
      precision: 'ms',
      include: 'simulated',
      format: 'ndjson',
    };
    // bed-sensor declares no tag, so `tags` (export-columns.test.ts) cannot be given a valid value here.
    expect(declared.map((p) => p.name).sort()).toEqual([...Object.keys(values), 'tags'].sort());
    expect(declared.filter((p) => p.required).map((p) => p.name)).toEqual(['type']);
    const all = await get(`/api/v1/projects/sleep-a/readings?${new URLSearchParams(values)}`, tokens.a);
    expect(all.status).toBe(200);
    expect((await ndjson(all)).length).toBeGreaterThan(0);
    const extra = await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&limit=10', tokens.a);
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: string }).error).toBe(
      `unknown parameter "limit"; allowed: ${declared.map((p) => p.name).join(', ')}`,
    );
  });

  it('declares no query parameters for the routes that take none', async () => {
    for (const path of [
      '/api/v1/dictionary',
      '/api/v1/projects/{id}/subjects',
      '/api/v1/projects/{id}/devices',
    ])
      expect(await specParams(path)).toEqual([]);
  });

  it('checks the token before the parameters, and takes an empty parameter as left out', async () => {
    const noToken = await get('/api/v1/projects/sleep-a/readings?type=bed-sensor&format=xml&limit=1');
    expect(noToken.status).toBe(401);
    const empty = await get(
      '/api/v1/projects/sleep-a/readings?type=bed-sensor&format=&from=&fields=',
      tokens.a,
    );
    expect(empty.status).toBe(200);
    expect((await empty.text()).split('\n')[0]).toBe(
      'time,subject,device,device_type,schema_version,provenance,heartRate',
    );
    const missing = await get('/api/v1/projects/sleep-a/readings?type=', tokens.a);
    expect(((await missing.json()) as { error: string }).error).toBe('type is required: one of bed-sensor');
  });
});
