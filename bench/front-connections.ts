// Connections with Mosquitto in front (issue 19): N devices (one MQTT.js connection each, spread over
// several loopback source addresses) connected to Debian's Mosquitto and reporting once a minute,
// with a gateway in external mode behind each broker, and the memory (RSS) of every broker and every
// gateway: idle, with all connected, near the end, peak. Every acknowledged reading must be in
// InfluxDB afterwards. One Mosquitto process holds at most its open-file limit of connections; with
// --shards K the devices are split over K brokers, each with its gateway (k broker nodes, m = k
// gateways), where a machine's limit keeps one broker from holding them all.
//
//   npx tsx bench/front-connections.ts --devices 100000 --shards 6 --processes 8 --sources 8
//   npx tsx bench/front-connections.ts --devices 19000 --shards 1    (one broker, up to its limit)
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { type FrontMosquitto, startFrontMosquitto, writeAccessFiles } from './lib/front-mosquitto.js';
import { countPoints, influxQuery, waitForCount } from './lib/influx.js';
import { startLoad } from './lib/load.js';
import { type ProcessUsage, rssMiB, watchProcess } from './lib/proc.js';
import type { PublisherDevice } from './lib/publisher.js';
import { fmt, say, table, writeResult } from './lib/report.js';
import { benchRegistry, MEASUREMENT, type SystemUnderTest, startGatewaySystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    shards: { type: 'string', default: '1' },
    duration: { type: 'string', default: '90s' },
    processes: { type: 'string', default: '8' },
    sources: { type: 'string', default: '8' },
    'max-files': { type: 'string' },
  },
});
const devices = Number(args.devices);
const shards = Number(args.shards);
const durationMs = parseDuration(args.duration ?? '90s') ?? 90_000;
const sources = Array.from({ length: Number(args.sources) }, (_, i) => `127.0.0.${i + 2}`);
const maxFiles = args['max-files'] ? Number(args['max-files']) : undefined;

/** This process's open-file limit (soft, hard), which the brokers it starts inherit. */
function openFileLimit(): string {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return (
    line
      ?.split(/\s{2,}/)
      .slice(1, 3)
      .join(' / ') ?? 'unknown'
  );
}

interface Part {
  role: string;
  pid: number;
  idleRssMiB: number;
  connectedRssMiB: number;
  lateRssMiB: number;
  usage?: ProcessUsage;
}

interface Shard {
  front: FrontMosquitto;
  gateway: SystemUnderTest;
  /** This broker's devices, each with its url. */
  devices: PublisherDevice[];
  dir: string;
}

/**
 * One broker with its gateway and its own range of devices (ids ox-sS-NNNNN): each shard's registry
 * and Mosquitto files hold only its devices, as separate labs' would.
 */
async function startShard(s: number, influxUrl: string, db: string): Promise<Shard> {
  const per = Math.ceil(devices / shards);
  const ids = Array.from(
    { length: Math.min(per, devices - (s - 1) * per) },
    (_, i) => `ox-s${s}-${String(i).padStart(5, '0')}`,
  );
  const reg = await benchRegistry(ids.length, undefined, undefined, undefined, ids);
  const t = performance.now();
  await writeAccessFiles(reg.registry, reg.dir);
  say(
    `shard ${s}: ${fmt(ids.length)} devices; password_file and acl_file in ${fmt((performance.now() - t) / 1000, 1)} s`,
  );
  const front = await startFrontMosquitto({
    registry: reg.registry,
    accessFiles: reg.dir,
    conf: ['max_connections -1', 'set_tcp_nodelay true'],
    ...(maxFiles ? { maxFiles } : {}),
  });
  try {
    const gateway = await startGatewaySystem(
      { influxUrl, db, devices: ids.length, registryFile: reg.registry },
      ['--source', 'external', '--broker-url', front.gatewayUrl, '--broker-client-id', `livinglab-gw-${s}`],
      { LIVINGLAB_EXTERNAL_USERNAME: front.gatewayUser, LIVINGLAB_BROKER_PASSWORD: front.gatewayPassword },
    );
    return {
      front,
      gateway,
      devices: ids.map((id) => ({ ...reg.device(id), url: front.url })),
      dir: reg.dir,
    };
  } catch (err) {
    await front.stop();
    await rm(reg.dir, { recursive: true, force: true });
    throw err;
  }
}

async function startShards(influxUrl: string, db: string): Promise<Shard[]> {
  const started: Shard[] = [];
  try {
    for (let s = 1; s <= shards; s++) started.push(await startShard(s, influxUrl, db));
  } catch (err) {
    for (const sh of started) await stopShard(sh);
    throw err;
  }
  return started;
}

async function stopShard(sh: Shard) {
  await sh.gateway.stop();
  await sh.front.stop();
  await rm(sh.dir, { recursive: true, force: true });
}

const parts = (started: Shard[]): Part[] =>
  started.flatMap((sh, i) =>
    [
      [`mosquitto ${i + 1}`, sh.front.pid],
      [`gateway ${i + 1}`, sh.gateway.pids.gateway ?? 0],
    ].map(([role, pid]) => ({
      role: role as string,
      pid: pid as number,
      idleRssMiB: rssMiB(pid as number),
      connectedRssMiB: Number.NaN,
      lateRssMiB: Number.NaN,
    })),
  );

async function measure(influxUrl: string, db: string, started: Shard[]) {
  const measured = parts(started);
  const t0 = performance.now();
  const load = startLoad({
    url: started[0]?.front.url ?? '',
    devices: started.flatMap((sh) => sh.devices),
    batch: 1,
    messagesPerSecond: devices / 60,
    durationMs,
    processes: Number(args.processes),
    drainTimeoutMs: 60_000,
    sourceAddresses: sources,
  });
  await load.ready;
  const connectSeconds = (performance.now() - t0) / 1000;
  const load1AtConnected = loadavg()[0] ?? Number.NaN;
  for (const p of measured) p.connectedRssMiB = rssMiB(p.pid);
  const watchers = measured.map((p) => watchProcess(p.pid));
  const late = setTimeout(
    () => {
      for (const p of measured) p.lateRssMiB = rssMiB(p.pid);
    },
    Math.max(0, durationMs - 2000),
  );
  const result = await load.go();
  clearTimeout(late);
  measured.forEach((p, i) => {
    p.usage = watchers[i]?.stop();
  });
  const { stored } = await waitForCount(
    () => countPoints(influxUrl, db, MEASUREMENT, 'spo2'),
    result.readingsAcked,
  );
  return { measured, connectSeconds, load1AtConnected, result, stored };
}

const influx = await startInfluxd();
const db = 'bench_front_connections';
let outcome: Awaited<ReturnType<typeof measure>> | undefined;
try {
  await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
  say(`open files (soft / hard): ${openFileLimit()}; ${fmt(devices)} devices over ${shards} broker(s)`);
  const started = await startShards(influx.url, db);
  try {
    outcome = await measure(influx.url, db, started);
  } finally {
    for (const sh of started) await stopShard(sh);
  }
} finally {
  await influx.stop();
}
report(outcome);
process.exit(0);

function report(o: typeof outcome) {
  if (!o) return;
  const sum = (prefix: string, f: (p: Part) => number) =>
    o.measured.filter((p) => p.role.startsWith(prefix)).reduce((a, p) => a + f(p), 0);
  const rows = o.measured.map((p) => [
    p.role,
    fmt(p.idleRssMiB),
    fmt(p.connectedRssMiB),
    fmt(p.lateRssMiB),
    fmt(p.usage?.peakRssMiB ?? Number.NaN),
    fmt(p.usage?.cpuPercent ?? Number.NaN),
  ]);
  for (const prefix of ['mosquitto', 'gateway'])
    rows.push([
      `all ${prefix}`,
      fmt(sum(prefix, (p) => p.idleRssMiB)),
      fmt(sum(prefix, (p) => p.connectedRssMiB)),
      fmt(sum(prefix, (p) => p.lateRssMiB)),
      fmt(sum(prefix, (p) => p.usage?.peakRssMiB ?? Number.NaN)),
      fmt(sum(prefix, (p) => p.usage?.cpuPercent ?? Number.NaN)),
    ]);
  const perDeviceKiB =
    ((sum('mosquitto', (p) => p.connectedRssMiB) - sum('mosquitto', (p) => p.idleRssMiB)) * 1024) / devices;
  const peakTotal = sum('', (p) => p.usage?.peakRssMiB ?? Number.NaN);
  console.log(
    [
      `## ${fmt(devices)} devices connected to Mosquitto (${shards} broker(s), each with one gateway behind it), one reading per device per minute for ${durationMs / 1000} s`,
      '',
      table(
        [
          'process',
          'RSS idle MiB',
          'RSS all connected MiB',
          `RSS ${fmt(durationMs / 1000 - 2)} s later MiB`,
          'peak RSS MiB',
          'CPU %',
        ],
        rows,
      ),
      '',
      `connected in ${fmt(o.connectSeconds, 1)} s over ${sources.length} source addresses and ${args.processes} client processes (load average ${fmt(o.load1AtConnected, 1)} then); ` +
        `Mosquitto ${fmt(perDeviceKiB, 2)} KiB per connected device; brokers + gateways peak ${fmt(peakTotal)} MiB (target < 1,024); ` +
        `${fmt(o.stored)} of ${fmt(o.result.readingsAcked)} acknowledged readings stored, ${o.result.disconnects} disconnects, ${o.result.connectRetries} connection attempts tried again`,
      '',
      `raw: ${writeResult('front-connections', { args, openFiles: openFileLimit(), ...o })}`,
    ].join('\n'),
  );
}
