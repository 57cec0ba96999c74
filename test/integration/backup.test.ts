// `livinglab backup` beside a running gateway under load, and `livinglab restore` into a fresh
// gateway: real gateway processes, real influxd (InfluxDB's own portable backup and restore
// through its RPC address), MQTT.js publishers at QoS 1. InfluxDB is cut off from the gateway
// (not stopped: its backup needs it) so that the spool holds acknowledged readings when the backup
// is taken.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { startInfluxd } from '../helpers/influxd.js';
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

describe('backup and restore', () => {
  it('brings every reading acknowledged before a backup under load, with the same pseudonyms, into a fresh gateway', async () => {
    const influx = await startInfluxd();
    onTestFinished(() => influx.stop());
    const proxy = await startSwitchProxy(influx.url);
    onTestFinished(() => proxy.stop());
    const gw = await createGatewayProcess({ influxUrl: proxy.url, db: DB, devices: DEVICES });
    onTestFinished(() => gw.stop());
    const registry = join(gw.dir, 'lab.yaml');
    const token = await setUpProject(registry, gw.dataDir);
    await gw.start();

    const fleet = startFleet({ ids: DEVICES.map((d) => d.id), site: SITE, url: gw.mqttUrl, intervalMs: 5 });
    onTestFinished(() => fleet.stop());
    await fleet.untilAcked(200);
    const written = await compareWithInflux(ackedNow(fleet), influx, DB);
    expect(written.lost).toBe(0);
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
    await fleet.stop();
    expect(await gw.kill('SIGKILL')).toBe(null);

    // A fresh machine: an empty InfluxDB and a gateway folder without registry or data.
    const influx2 = await startInfluxd();
    onTestFinished(() => influx2.stop());
    const gw2 = await createGatewayProcess({ influxUrl: influx2.url, db: DB, devices: [] });
    onTestFinished(() => gw2.stop());
    const registry2 = join(gw2.dir, 'lab.yaml');
    const into = ['--registry', registry2, '--data-dir', gw2.dataDir];
    const refused = await runCli(['restore', out, ...into]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`cannot restore: ${registry2} exists`);
    // The new machine's own registry files go; the restored ones take their place.
    for (const f of ['lab.yaml', 'lab.secrets.yaml', 'lab.audit-head.json'])
      await rm(join(gw2.dir, f), { force: true });
    const restore = await runCli(['restore', out, ...into, '--influx', '--influx-rpc', influx2.rpcAddress]);
    expect(restore.stderr).toMatch(/^restored \d+ files of the backup of .* and InfluxDB\n$/);
    expect(restore.code).toBe(0);
    expect((await readFile(join(gw2.dataDir, 'audit.ndjson'))).length).toBeGreaterThan(0);

    await gw2.start();
    const found = await compareWithInflux(mustHave, influx2, DB, 120_000);
    expect(found).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(found.acked).toBeGreaterThan(cutAt);
    // The same token, the same pseudonyms for the same readings.
    const after = await exportRows(gw2.httpPort, token);
    // Both devices publish at the same instants: compare the subjects at each instant.
    const byTime = (rows: Record<string, unknown>[]) => {
      const m = new Map<unknown, unknown[]>();
      for (const r of rows) m.set(r.time, [...(m.get(r.time) ?? []), r.subject].sort());
      return m;
    };
    const afterAt = byTime(after);
    for (const [time, subjects] of byTime(before)) expect(afterAt.get(time), String(time)).toEqual(subjects);
    const verify = await runCli(['audit', 'verify', ...into]);
    expect(verify.stdout).toMatch(/chain intact \(sealed with the audit key from line 1, head matches\)/);
    expect(verify.code).toBe(0);

    // One byte changed in the backup: the manifest check refuses it, and nothing is written.
    const copy = join(out, 'registry', 'registry.yaml');
    await writeFile(copy, `${await readFile(copy, 'utf8')}# edited\n`);
    const target = join(gw2.dir, 'again');
    const tampered = await runCli([
      'restore',
      out,
      '--registry',
      join(target, 'lab.yaml'),
      '--data-dir',
      join(target, 'data'),
    ]);
    expect(tampered.code).toBe(2);
    expect(tampered.stderr).toContain('registry/registry.yaml does not match the manifest');
    await expect(readFile(join(target, 'lab.yaml'))).rejects.toThrow(/ENOENT/);
  });
});
