// `livinglab backup` beside a running gateway under load, and `livinglab restore` into a fresh
// gateway: real gateway processes, real influxd (InfluxDB's own portable backup and restore
// through its RPC address), MQTT.js publishers at QoS 1. InfluxDB is cut off from the gateway
// (not stopped: its backup needs it) so that the spool holds acknowledged readings when the backup
// is taken.
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { readMetric } from '../helpers/metrics.js';
import { compareWithInflux, type Fleet, startFleet } from '../helpers/publishers.js';
import { dayFromToday, ndjson } from '../helpers/research.js';

vi.setConfig({ testTimeout: 240_000 });

/** A TCP proxy to influxd that can refuse and drop every connection: "InfluxDB is unreachable". */
async function startSwitchProxy(target: string) {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let open = true;
  const server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = createConnection({ host: hostname, port: Number(port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const SITE = 'backup';
const DEVICES = [
  { id: 'bk-ox-0', type: 'pulse-oximeter', site: SITE, subject: 'p-101' },
  { id: 'bk-ox-1', type: 'pulse-oximeter', site: SITE, subject: 'p-102' },
];
const DB = 'backup_restore';

async function exportRows(httpPort: number, token: string) {
  const res = await fetch(
    `http://127.0.0.1:${httpPort}/api/v1/projects/gait/readings?type=pulse-oximeter&format=ndjson`,
    { headers: { authorization: `Bearer ${token}` } },
  );
  expect(res.status).toBe(200);
  return ndjson(res);
}

/** A project over the devices' subjects and a researcher token, made with the commands a lab uses. */
async function setUpProject(registry: string, dataDir: string): Promise<string> {
  const flags = ['--registry', registry, '--data-dir', dataDir];
  const add = ['projects', 'add', 'gait', '--from', dayFromToday(-10), '--to', dayFromToday(1)];
  expect((await runCli([...add, '--types', 'pulse-oximeter', ...flags])).code).toBe(0);
  for (const d of DEVICES) {
    const c = ['projects', 'consent', 'gait', '--subject', d.subject, '--date', dayFromToday(-1)];
    expect((await runCli([...c, ...flags])).code).toBe(0);
  }
  const issued = await runCli(['tokens', 'issue', '--project', 'gait', '--researcher', 'ann', ...flags]);
  expect(issued.code).toBe(0);
  return issued.stdout.trim();
}

/** Every reading acknowledged so far, frozen: what a backup taken now must bring back. */
function ackedNow(fleet: Fleet): Fleet {
  const frozen = new Map([...fleet.ackedByDevice].map(([id, m]) => [id, new Map(m)]));
  const acked = [...frozen.values()].reduce((n, m) => n + m.size, 0);
  return { ...fleet, sent: fleet.sent, acked, ackedByDevice: frozen };
}

/** Both devices publish at the same instants: the subjects (pseudonyms) at each instant. */
function subjectsByTime(rows: Record<string, unknown>[]): Map<unknown, unknown[]> {
  const m = new Map<unknown, unknown[]>();
  for (const r of rows) m.set(r.time, [...(m.get(r.time) ?? []), r.subject].sort());
  return m;
}

const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

/**
 * A gateway under load whose InfluxDB becomes unreachable, backed up with --influx while its devices
 * go on publishing, then killed: the backup, and what it must bring back.
 */
async function backUpUnderLoad(cleanup: (() => Promise<unknown>)[]) {
  const influx = await startInfluxd();
  cleanup.push(() => influx.stop());
  const proxy = await startSwitchProxy(influx.url);
  cleanup.push(() => proxy.stop());
  const gw = await createGatewayProcess({ influxUrl: proxy.url, db: DB, devices: DEVICES });
  cleanup.push(() => gw.stop());
  const registry = join(gw.dir, 'lab.yaml');
  const token = await setUpProject(registry, gw.dataDir);
  await gw.start();

  const fleet = startFleet({ ids: DEVICES.map((d) => d.id), site: SITE, url: gw.mqttUrl, intervalMs: 5 });
  cleanup.push(() => fleet.stop());
  await fleet.untilAcked(200);
  expect((await compareWithInflux(ackedNow(fleet), influx, DB)).lost).toBe(0);
  const before = await exportRows(gw.httpPort, token);
  expect(new Set(before.map((r) => r.subject)).size).toBe(2);

  // InfluxDB unreachable: readings keep being acknowledged, into the spool only.
  proxy.cut();
  const cutAt = fleet.acked;
  await fleet.untilAcked(cutAt + 400);
  expect(await readMetric(gw.opsPort, 'livinglab_spool_bytes')).toBeGreaterThan(0);

  // The backup runs while the devices go on publishing.
  const out = join(gw.dir, 'backup');
  const mustHave = ackedNow(fleet);
  const backup = await runCli([
    ...['backup', '--out', out, '--registry', registry, '--data-dir', gw.dataDir],
    ...['--influx', '--influx-rpc', influx.rpcAddress],
  ]);
  expect(backup.stderr).toMatch(
    /backup in .*: \d+ files, spool \d+ segment\(s\) with [1-9]\d* record\(s\), InfluxDB/,
  );
  expect(backup.code).toBe(0);
  expect(fleet.acked).toBeGreaterThan(mustHave.acked);
  console.log(
    `[backup] acked before the cut ${cutAt}, before the backup ${mustHave.acked}, in all ${fleet.acked}`,
  );
  await fleet.stop();
  expect(await gw.kill('SIGKILL')).toBe(null);
  return { out, token, before, mustHave, cutAt };
}

// One story, in order: each test goes on from where the one before left off.
describe('backup under load, restore into a fresh gateway', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });
  let out = '';
  let token = '';
  let before: Record<string, unknown>[] = [];
  let mustHave: Fleet | undefined;
  let cutAt = 0;

  it('takes a backup beside a running gateway while devices publish and InfluxDB is unreachable', async () => {
    ({ out, token, before, mustHave, cutAt } = await backUpUnderLoad(cleanup));
  });

  let influx2: Influxd | undefined;
  let gw2: GatewayProcess | undefined;
  let into: string[] = [];

  it('refuses to restore over an existing registry, naming it', async () => {
    const influx = await startInfluxd();
    influx2 = influx;
    cleanup.push(() => influx.stop());
    const gw = await createGatewayProcess({ influxUrl: influx.url, db: DB, devices: [] });
    gw2 = gw;
    cleanup.push(() => gw.stop());
    const registry = join(gw.dir, 'lab.yaml');
    into = ['--registry', registry, '--data-dir', gw.dataDir];
    const refused = await runCli(['restore', out, ...into]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`cannot restore: ${registry} exists`);
    await expect(stat(gw.dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('brings every reading acknowledged before the backup into a fresh gateway and InfluxDB, with the same pseudonyms', async () => {
    if (!gw2 || !influx2 || !mustHave) throw new Error('the backup test did not run');
    // The new machine's own registry files go; the restored ones take their place.
    for (const f of ['lab.yaml', 'lab.secrets.yaml', 'lab.audit-head.json'])
      await rm(join(gw2.dir, f), { force: true });
    const restore = await runCli(['restore', out, ...into, '--influx', '--influx-rpc', influx2.rpcAddress]);
    expect(restore.stderr).toMatch(/^restored \d+ files of the backup of .* and InfluxDB\n$/);
    expect(restore.code).toBe(0);
    for (const f of ['lab.yaml', 'lab.secrets.yaml', 'lab.audit-head.json', 'data/audit.ndjson'])
      expect(await modeOf(join(gw2.dir, f)), f).toBe(0o600);

    await gw2.start();
    const found = await compareWithInflux(mustHave, influx2, DB, 120_000);
    expect(found).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(found.acked).toBeGreaterThan(cutAt);
    // The same token, the same pseudonyms for the same readings.
    const afterAt = subjectsByTime(await exportRows(gw2.httpPort, token));
    // The first export may have caught one device's reading of an instant before the other's.
    for (const [time, subjects] of subjectsByTime(before))
      expect(afterAt.get(time), String(time)).toEqual(expect.arrayContaining(subjects));
    const pseudonyms = (m: Map<unknown, unknown[]>) => new Set([...m.values()].flat());
    expect(pseudonyms(afterAt)).toEqual(pseudonyms(subjectsByTime(before)));
    const verify = await runCli(['audit', 'verify', ...into]);
    expect(verify.stdout).toMatch(/chain intact \(sealed with the audit key from line 1, head matches\)/);
    expect(verify.code).toBe(0);
  });

  it('refuses a backup in which a file was changed, and writes nothing', async () => {
    const copy = join(out, 'registry', 'registry.yaml');
    await writeFile(copy, `${await readFile(copy, 'utf8')}# edited\n`);
    const target = join(out, '..', 'again');
    const to = ['--registry', join(target, 'lab.yaml'), '--data-dir', join(target, 'data')];
    const tampered = await runCli(['restore', out, ...to]);
    expect(tampered.code).toBe(2);
    expect(tampered.stderr).toContain('registry/registry.yaml does not match the manifest');
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });
});
