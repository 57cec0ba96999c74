// Exports read back as a researcher would (issue 13, items 5, 7, 12, 13): the row order reveals
// nothing about participant codes, every format returns every row, every export (finished or cut
// off) is in the audit log with the rows sent, and odd parameter values get a 400. Issue 18: the
// export reads InfluxDB's chunks uncompressed.

import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ARROW_BATCH_ROWS } from '../../src/query/arrow.js';
import { auditHeadFile, verifyAuditLog } from '../../src/query/audit.js';
import { pseudonym } from '../../src/query/pseudonym.js';
import { readRegistryFile } from '../../src/registry/file.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { loadAuditKey } from '../../src/registry/secrets-file.js';
import type { RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { startCutProxy } from '../helpers/cut-proxy.js';
import { useLab } from '../helpers/fixture.js';
import { eventually } from '../helpers/mqtt.js';
import { startRecordingProxy } from '../helpers/recording-proxy.js';
import { untilTokens } from '../helpers/research.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
// Dates from one "now" taken when the file loads: a run across UTC midnight sees one today.
const TODAY = Date.now();
const day = (offset: number) => new Date(TODAY + offset * DAY).toISOString().slice(0, 10);
const T0 = Math.floor((Date.now() - 2 * DAY) / HOUR) * HOUR;
/** A time as exports write it: RFC 3339 UTC with nine fraction digits. */
const iso = (ms: number) => new Date(ms).toISOString().replace('Z', '000000Z');
// More rows than an Arrow batch, an InfluxDB chunk (5,000) or any page, and not a multiple of them.
const BIG_ROWS = 120_001;
const CODES = ['p-1', 'p-2', 'p-3', 'p-4'];

const tokens: Record<string, string> = {};
let pseudonyms: Record<string, string> = {};

/** Readings of the order project: [code, device, ms after T0, heart rate]. p-4 starts first. */
const ORDER_POINTS: [string, string, number, number][] = [
  ['p-4', 'bed-4', 0, 61],
  ['p-3', 'bed-3', 60_000, 62],
  ['p-1', 'bed-1', 120_000, 63],
  ['p-2', 'bed-2', 120_000, 64],
  ['p-3', 'bed-3', 120_000, 65],
  ['p-4', 'bed-4', 120_000, 66],
  ['p-2', 'bed-2', HOUR + 5_000, 67],
  ['p-1', 'bed-1', HOUR + 5_000, 68],
  ['p-4', 'bed-4', HOUR + 9_000, 69],
  ['p-1', 'bed-1', 2 * HOUR, 70],
  ['p-3', 'bed-3', 2 * HOUR, 71],
];

const line = (code: string, device: string, ms: number, hr: number) =>
  `bed_sensor,device_id=${device},device_type=bed-sensor,schema_version=1,site=s,subject=${code} heartRate=${hr}i,occupied=true ${ms * 1_000_000}`;

/** A project secret under which the pseudonyms sort differently from the codes (found, not hoped). */
function secretWithShuffledOrder(): string {
  for (let i = 1; ; i++) {
    const secret = i.toString(16).padStart(64, '0');
    const byPseudonym = [...CODES].sort((a, b) => pseudonym(secret, a).localeCompare(pseudonym(secret, b)));
    if (
      byPseudonym[0] !== 'p-1' &&
      byPseudonym[0] !== 'p-4' &&
      byPseudonym.join() !== [...CODES].reverse().join()
    )
      return secret;
  }
}

const lab = useLab({ devices: [] });
beforeAll(async () => {
  const order = ORDER_POINTS.map(([c, d, ms, hr]) => line(c, d, T0 + ms, hr));
  let res = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, {
    method: 'POST',
    body: order.join('\n'),
  });
  expect(res.status).toBe(204);
  const big: string[] = [];
  for (let i = 0; i < BIG_ROWS; i++) big.push(line('p-big', 'bed-big', T0 + i * 1000, 50 + (i % 40)));
  res = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, { method: 'POST', body: big.join('\n') });
  expect(res.status).toBe(204);
  const secret = secretWithShuffledOrder();
  await lab.gw.editRegistry((d0) => {
    const period = { from: day(-10), to: day(1), types: ['bed-sensor'], fields: ['heartRate'] };
    let d: RegistryData = addProject(addProject(d0, { id: 'order', ...period }), { id: 'big', ...period });
    d = { ...d, projects: d.projects.map((p) => (p.id === 'order' ? { ...p, secret } : p)) };
    for (const code of CODES) d = setConsent(d, 'order', code, { on: day(-10) });
    d = setConsent(d, 'big', 'p-big', { on: day(-10) });
    for (const project of ['order', 'big']) {
      const r = issueToken(d, { project, researcher: `r-${project}`, expires: new Date(Date.now() + DAY) });
      d = r.data;
      tokens[project] = r.token;
    }
    return d;
  });
  await untilTokens(lab.gw, 2);
  pseudonyms = Object.fromEntries(CODES.map((c) => [c, pseudonym(secret, c)]));
}, 120_000);

const url = (project: string, qs: string) =>
  `http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/projects/${project}/readings?type=bed-sensor&${qs}`;
const get = (project: string, qs: string) =>
  fetch(url(project, qs), { headers: { authorization: `Bearer ${tokens[project]}` } });

/** [time ISO, subject, heartRate] per row, parsed from the body in its own format. */
async function rowsOf(res: Response, format: string): Promise<[string, string, number][]> {
  if (format === 'arrow') {
    const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    // The time column's exact values (nanoseconds), written as the text formats write them.
    const ns = table.getChild('time')?.data.flatMap((d) => [...(d.values as BigInt64Array)]) ?? [];
    const text = (t: bigint) =>
      `${new Date(Number(t / 1_000_000n)).toISOString().slice(0, 19)}.${String(t % 1_000_000_000n).padStart(9, '0')}Z`;
    return table
      .toArray()
      .map((r: { subject: string; heartRate: bigint }, i: number) => [
        text(ns[i] as bigint),
        r.subject,
        Number(r.heartRate),
      ]);
  }
  const text = await res.text();
  if (format === 'csv') {
    const [header, ...lines] = text.trim().split('\n');
    expect(header).toBe('time,subject,device,device_type,schema_version,provenance,heartRate');
    return lines.map((l) => {
      const [t, s, , , , , hr] = l.split(',');
      return [t as string, s as string, Number(hr)];
    });
  }
  const objects = (
    format === 'json'
      ? JSON.parse(text)
      : text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
  ) as { time: string; subject: string; heartRate: number }[];
  return objects.map((o) => [o.time, o.subject, o.heartRate]);
}

interface AuditLine {
  event: string;
  export: string;
  status?: string;
  rows?: number;
  query?: { format?: string };
}
const auditLines = async () =>
  (await readFile(join(lab.gw.dir, 'data', 'audit.ndjson'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditLine);
const endOf = (id: string) =>
  eventually(auditLines, (lines) => lines.some((l) => l.export === id && l.event === 'export-ended')).then(
    (lines) => lines.find((l) => l.export === id && l.event === 'export-ended') as AuditLine,
  );

const FORMATS = ['csv', 'ndjson', 'json', 'arrow'] as const;

describe('export order (item 5)', () => {
  const byTimeThenPseudonym = (a: [string, string], b: [string, string]) =>
    a[0] === b[0] ? a[1].localeCompare(b[1]) : a[0].localeCompare(b[0]);

  it.each(FORMATS)(
    'orders raw rows by time, then pseudonym, never by participant code (%s)',
    async (format) => {
      const expected = ORDER_POINTS.map(
        ([code, , ms, hr]) => [iso(T0 + ms), pseudonyms[code] as string, hr] as const,
      ).sort((a, b) => byTimeThenPseudonym([a[0], a[1]], [b[0], b[1]]));
      const rows = await rowsOf(await get('order', `format=${format}`), format);
      expect(rows).toEqual(expected);
    },
  );

  it.each(FORMATS)('orders hourly means by window start, then pseudonym (%s)', async (format) => {
    const sums = new Map<string, { sum: number; n: number }>();
    for (const [code, , ms, hr] of ORDER_POINTS) {
      const key = `${iso(T0 + Math.floor(ms / HOUR) * HOUR)}|${pseudonyms[code]}`;
      const s = sums.get(key) ?? { sum: 0, n: 0 };
      sums.set(key, { sum: s.sum + hr, n: s.n + 1 });
    }
    const expected = [...sums]
      .map(([k, s]) => [...(k.split('|') as [string, string]), s.sum / s.n] as [string, string, number])
      .sort((a, b) => byTimeThenPseudonym([a[0], a[1]], [b[0], b[1]]));
    const rows = await rowsOf(await get('order', `every=1h&fn=mean&format=${format}`), format);
    expect(rows).toEqual(expected);
  });
});

describe('every row in every format, and the audit log (items 7 and 12)', () => {
  it.each(FORMATS)(
    `returns all ${BIG_ROWS.toLocaleString('en')} rows as %s, audited as finished with that count`,
    { timeout: 60_000 },
    async (format) => {
      const res = await get('big', `format=${format}`);
      expect(res.status).toBe(200);
      const id = res.headers.get('x-livinglab-export') as string;
      const rows = await rowsOf(res, format);
      expect(BIG_ROWS).toBeGreaterThan(2 * ARROW_BATCH_ROWS);
      expect(rows).toHaveLength(BIG_ROWS);
      expect(rows.at(-1)?.[0]).toBe(iso(T0 + (BIG_ROWS - 1) * 1000));
      expect(await endOf(id)).toMatchObject({ status: 'finished', rows: BIG_ROWS });
      const started = (await auditLines()).find((l) => l.export === id && l.event === 'export-started');
      expect(started?.query?.format).toBe(format);
    },
  );

  it('records an export the client hangs up on as cut off, with the rows sent; the chain verifies', async () => {
    const { id, bytes } = await new Promise<{ id: string; bytes: number }>((resolve, reject) => {
      const req = request(url('big', 'format=ndjson'), {
        headers: { authorization: `Bearer ${tokens.big}` },
      });
      req.on('response', (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes >= 1_000_000) {
            req.destroy();
            resolve({ id: res.headers['x-livinglab-export'] as string, bytes });
          }
        });
        res.on('end', () => reject(new Error('the whole export arrived before the client hung up')));
      });
      req.on('error', () => undefined);
      req.end();
    });
    expect(bytes).toBeGreaterThanOrEqual(1_000_000);
    const lines = await auditLines();
    expect(lines.filter((l) => l.export === id).map((l) => l.event)).toContain('export-started');
    const end = await endOf(id);
    expect(end.status).toBe('cut-off');
    // At least what the client read (one NDJSON row is under 250 bytes), and not everything.
    expect(end.rows).toBeGreaterThan(1_000_000 / 250);
    expect(end.rows).toBeLessThan(BIG_ROWS);
    expect(await verifySealed(lab.gw)).toEqual({
      entries: (await auditLines()).length,
      legacy: 0,
      sealedFrom: 1,
      notes: [],
    });
  });
});

/** Checks a gateway's audit log with its key and head, as `livinglab audit verify` does. */
async function verifySealed(gw: { dir: string; registryFile: string }) {
  return verifyAuditLog(join(gw.dir, 'data', 'audit.ndjson'), {
    key: await loadAuditKey(gw.registryFile),
    headFile: auditHeadFile(gw.registryFile),
  });
}

describe('an export that fails half-way (item 12, and `livinglab export`)', () => {
  it('is audited as failed with the rows sent, and the CLI exits 2 saying its file is incomplete', {
    timeout: 60_000,
  }, async () => {
    // A second gateway on the same data, reading InfluxDB through a link that breaks after 2 MB:
    // a few 5,000-row chunks (uncompressed: the gateway asks for no gzip), far from all 120,001 rows.
    const proxy = await startCutProxy(lab.influx.url, 2_000_000);
    onTestFinished(() => proxy.stop());
    const gw2 = await lab.startGateway({ influxUrl: proxy.url, config: { influx: { db: lab.gw.db } } });
    const registry = await readRegistryFile(lab.gw.registryFile);
    await gw2.editRegistry(() => registry);
    await untilTokens(gw2, 2);
    const out = join(gw2.dir, 'big.csv');
    const cli = await runCli(
      [
        'export',
        '--project',
        'big',
        '--type',
        'bed-sensor',
        '--out',
        out,
        '--url',
        `http://127.0.0.1:${gw2.app.httpPort}`,
      ],
      { env: { LIVINGLAB_TOKEN: tokens.big } },
    );
    expect(proxy.cuts()).toBeGreaterThan(0);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/^livinglab: the export broke off after [\d,]+ rows .*big\.csv is incomplete/);
    const file = join(gw2.dir, 'data', 'audit.ndjson');
    const lines = (
      await eventually(
        async () => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean),
        (l) => l.length >= 2,
      )
    ).map((l) => JSON.parse(l) as AuditLine & { via: string; error?: string });
    // `livinglab export` is an HTTP client like any other: the server records "api".
    expect(lines.map((l) => [l.event, l.via])).toEqual([
      ['export-started', 'api'],
      ['export-ended', 'api'],
    ]);
    const written = (await readFile(out, 'utf8')).trim().split('\n').length - 1;
    expect(written).toBeGreaterThan(0);
    expect(lines[1]).toMatchObject({ status: 'failed', error: expect.any(String) });
    expect(lines[1]?.rows).toBeGreaterThanOrEqual(written);
    expect(lines[1]?.rows).toBeLessThan(BIG_ROWS);
    expect(await verifySealed(gw2)).toEqual({ entries: 2, legacy: 0, sealedFrom: 1, notes: [] });
    // A plain HTTP client sees the same break as a failure: the body ends without its last chunk.
    const res = await fetch(
      `http://127.0.0.1:${gw2.app.httpPort}/api/v1/projects/big/readings?type=bed-sensor&format=ndjson`,
      { headers: { authorization: `Bearer ${tokens.big}` } },
    );
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
  });
});

describe('reading InfluxDB for an export (issue 18, throughput)', () => {
  it('asks for chunks uncompressed, so influxd spends no CPU on gzip, and still returns every row', {
    timeout: 60_000,
  }, async () => {
    // A second gateway on the same data, reading InfluxDB through a proxy that records each request.
    const proxy = await startRecordingProxy(lab.influx.url);
    onTestFinished(() => proxy.stop());
    const gw2 = await lab.startGateway({ influxUrl: proxy.url, config: { influx: { db: lab.gw.db } } });
    const registry = await readRegistryFile(lab.gw.registryFile);
    await gw2.editRegistry(() => registry);
    await untilTokens(gw2, 2);
    const res = await fetch(
      `http://127.0.0.1:${gw2.app.httpPort}/api/v1/projects/big/readings?type=bed-sensor&format=csv`,
      { headers: { authorization: `Bearer ${tokens.big}` } },
    );
    expect(res.status).toBe(200);
    expect((await res.text()).trim().split('\n')).toHaveLength(BIG_ROWS + 1);
    const chunked = proxy.requests().filter((r) => r.path.includes('chunked=true'));
    expect(chunked.length).toBeGreaterThan(0);
    // fetch asks for "gzip, deflate" unless told otherwise, and influxd then compresses every chunk.
    expect(chunked.map((r) => [r.acceptEncoding, r.contentEncoding ?? 'none'])).toEqual(
      chunked.map(() => ['identity', 'none']),
    );
  });
});

describe('parameters named like Object.prototype members (item 13)', () => {
  const names = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];
  const cases = names.flatMap((n) => [
    [`format=${n}`, /format must be one of csv, ndjson, json, arrow/],
    [`fields=${n}`, /is not released for bed-sensor/],
    [`every=1h&fn=${n}`, /fn must be one of/],
    [`every=${n}&fn=mean`, /every must look like/],
    [`from=${n}`, /from must be an RFC 3339 time/],
    [`to=${n}`, /to must be an RFC 3339 time/],
  ]) as [string, RegExp][];
  it.each(cases)('answers %s with 400 and a message saying what is allowed', async (qs, message) => {
    const res = await get('order', qs);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
  });

  it.each(names)('answers type=%s with 400', async (n) => {
    const res = await fetch(
      `http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/projects/order/readings?type=${n}`,
      {
        headers: { authorization: `Bearer ${tokens.order}` },
      },
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /type must be one of the project's device types/,
    );
  });
});
