// Memory with many devices connected: the gateway process's RSS once N devices (one MQTT
// connection each) are connected and publishing slowly (one reading per device per minute), against
// the #7 target of 300 MiB at 10,000 devices. Heap figures come from the gateway's /metrics.
//
//   npx tsx bench/connections.ts [--devices 10000] [--duration 60s] [--runs 3] [--processes 4]
//                                [--heap-snapshot DIR] [--tls]
//
// --tls connects the devices over MQTT over TLS (system gateway-tls, issue 16): the same figures.
//
// --heap-snapshot writes a heap snapshot of the gateway into DIR 2 s before the end of each run,
// with the devices connected, right after the figures are taken (CPU and peak RSS then end there);
// `npx tsx bench/heap.ts` reads it.
import { closeSync, mkdirSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { countPoints, influxQuery, waitForCount } from './lib/influx.js';
import { startLoad } from './lib/load.js';
import { type ProcessUsage, rssMiB, watchProcess } from './lib/proc.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { MEASUREMENT, metricValue, startGatewaySystem, startGatewayTlsSystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '60s' },
    runs: { type: 'string', default: '3' },
    processes: { type: 'string', default: '4' },
    'heap-snapshot': { type: 'string' },
    tls: { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const startSystem = args.tls ? startGatewayTlsSystem : startGatewaySystem;
const over = args.tls ? 'MQTT over TLS' : 'plain TCP';
const snapshotDir = args['heap-snapshot'] ? resolve(args['heap-snapshot']) : undefined;
if (snapshotDir) mkdirSync(snapshotDir, { recursive: true });
const durationMs = parseDuration(args.duration ?? '60s') ?? 60_000;
interface Run {
  idleRssMiB: number;
  connectedRssMiB: number;
  /** Near the end of the window: the connection storm's garbage has had a minute to be collected. */
  lateRssMiB: number;
  peakRssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  connectSeconds: number;
  readingsAcked: number;
  stored: number;
  cpuPercent: number;
  /** With --heap-snapshot: the file, for `npx tsx bench/heap.ts`. */
  heapSnapshot?: string;
}
const runs: Run[] = [];
const influx = await startInfluxd();
try {
  for (let run = 1; run <= Number(args.runs); run++) {
    const db = `bench_connections_${run}`;
    await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
    const sys = await startSystem({
      influxUrl: influx.url,
      db,
      devices,
      nodeArgs: snapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`] : [],
    });
    try {
      const pid = sys.pids.gateway as number;
      const idleRssMiB = rssMiB(pid);
      const t0 = performance.now();
      const load = startLoad({
        url: sys.mqttUrl,
        ...(sys.ca ? { ca: sys.ca } : {}),
        devices: sys.devices,
        batch: 1,
        messagesPerSecond: devices / 60,
        durationMs,
        processes: Number(args.processes),
        drainTimeoutMs: 60_000,
      });
      await load.ready;
      const connectSeconds = (performance.now() - t0) / 1000;
      const connectedRssMiB = rssMiB(pid);
      const w = watchProcess(pid);
      let lateRssMiB = Number.NaN;
      let beforeSnapshot: { usage: ProcessUsage; metrics: string } | undefined;
      let snapshot: Promise<string> | undefined;
      const late = setTimeout(
        () => {
          lateRssMiB = rssMiB(pid);
          if (!snapshotDir) return;
          // Figures first, while the devices are still connected: writing a snapshot collects
          // garbage, stalls the gateway and doubles its RSS for a while.
          const usage = w.stop();
          snapshot = (sys.metrics?.() ?? Promise.resolve('')).then((metrics) => {
            beforeSnapshot = { usage, metrics };
            return heapSnapshot(pid, snapshotDir);
          });
          // Awaited after the load ends; until then a failure must not count as unhandled.
          snapshot.catch(() => undefined);
        },
        Math.max(0, durationMs - 2000),
      );
      const result = await load.go();
      clearTimeout(late);
      const snapshotFile = await snapshot;
      const usage = beforeSnapshot?.usage ?? w.stop();
      const text = beforeSnapshot?.metrics ?? (await sys.metrics?.()) ?? '';
      const { stored } = await waitForCount(
        () => countPoints(influx.url, db, MEASUREMENT, 'spo2'),
        result.readingsAcked,
      );
      const r: Run = {
        idleRssMiB,
        connectedRssMiB,
        lateRssMiB,
        peakRssMiB: Math.max(usage.peakRssMiB, connectedRssMiB),
        heapUsedMiB: metricValue(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
        heapTotalMiB: metricValue(text, 'nodejs_heap_size_total_bytes') / 2 ** 20,
        externalMiB: metricValue(text, 'nodejs_external_memory_bytes') / 2 ** 20,
        connectSeconds,
        readingsAcked: result.readingsAcked,
        stored,
        cpuPercent: usage.cpuPercent,
        ...(snapshotFile ? { heapSnapshot: snapshotFile } : {}),
      };
      runs.push(r);
      if (snapshotFile) say(`run ${run}: heap snapshot ${snapshotFile} (npx tsx bench/heap.ts <file>)`);
      say(
        `run ${run}: ${devices} devices connected in ${fmt(connectSeconds, 1)} s; RSS idle ${fmt(idleRssMiB)} MiB, connected ${fmt(connectedRssMiB)} MiB, ${fmt(durationMs / 1000 - 2)} s later ${fmt(lateRssMiB)} MiB, peak ${fmt(r.peakRssMiB)} MiB, heap used/total ${fmt(r.heapUsedMiB)}/${fmt(r.heapTotalMiB)} MiB, external ${fmt(r.externalMiB)} MiB; ${r.stored} of ${r.readingsAcked} acknowledged readings stored`,
      );
    } finally {
      await sys.stop();
      await influxQuery(influx.url, undefined, `DROP DATABASE ${db}`).catch(() => undefined);
    }
  }
} finally {
  await influx.stop();
}
const col = (f: (r: Run) => number, d = 0) => fmtSummary(summarize(runs.map(f)), d);
console.log(
  [
    `## Memory with ${fmt(devices)} devices connected over ${over} (${durationMs / 1000} s at one reading per device per minute, ${runs.length} runs)`,
    '',
    table(
      [
        'gateway RSS before connections MiB',
        'RSS with all connected MiB',
        `RSS ${fmt(durationMs / 1000 - 2)} s later MiB`,
        'peak RSS MiB',
        'heap used / total MiB',
        'external MiB',
        'connect time s',
        'gateway CPU %',
        'stored / acknowledged',
      ],
      [
        [
          col((r) => r.idleRssMiB),
          col((r) => r.connectedRssMiB),
          col((r) => r.lateRssMiB),
          col((r) => r.peakRssMiB),
          `${col((r) => r.heapUsedMiB)} / ${col((r) => r.heapTotalMiB)}`,
          col((r) => r.externalMiB),
          col((r) => r.connectSeconds, 1),
          col((r) => r.cpuPercent),
          runs.map((r) => `${r.stored}/${r.readingsAcked}`).join(', '),
        ],
      ],
    ),
    '',
    `raw: ${writeResult(args.tls ? 'connections-tls' : 'connections', { args, runs })}`,
  ].join('\n'),
);
process.exit(0);

/** Asks the gateway for a heap snapshot and waits until the file is complete. */
async function heapSnapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  let last = -1;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (!file) continue;
    const path = join(dir, file);
    const size = statSync(path).size;
    // Written as a stream of JSON: done when the size holds still and the root object is closed.
    if (size > 0 && size === last && endsWithBrace(path, size)) return path;
    last = size;
  }
  throw new Error(`no complete heap snapshot from the gateway (pid ${pid}) in ${dir} within 120 s`);
}

function endsWithBrace(path: string, size: number): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b.toString() === '}';
  } finally {
    closeSync(fd);
  }
}
