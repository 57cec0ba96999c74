// Stage ceiling: the broker alone. The same publishers flood the gateway's embedded broker (aedes
// with our authentication, ACL and frame guard, ingestion skipped) and Debian's Mosquitto, side by
// side, alternating; the figure is acknowledged QoS 1 messages per second until the last PUBACK.
//
//   npx tsx bench/broker.ts [--rate 60000] [--duration 15s] [--runs 3] [--devices 1000] [--processes 2]
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { startLoad } from './lib/load.js';
import { watchProcess } from './lib/proc.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { type SystemName, startSystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '60000' },
    duration: { type: 'string', default: '15s' },
    runs: { type: 'string', default: '3' },
    devices: { type: 'string', default: '1000' },
    processes: { type: 'string', default: '2' },
  },
});
const durationMs = parseDuration(args.duration ?? '15s') ?? 15_000;
const systems: SystemName[] = ['aedes', 'mosquitto'];
const runs: Record<
  string,
  {
    sent: number;
    acked: number;
    ackedPerSecond: number;
    p50: number;
    p99: number;
    cpu: number;
    rss: number;
  }[]
> = {};
for (let run = 1; run <= Number(args.runs); run++) {
  for (const system of systems) {
    const sys = await startSystem(system, { influxUrl: '', db: '', devices: Number(args.devices) });
    try {
      const load = startLoad({
        url: sys.mqttUrl,
        devices: sys.devices,
        batch: 1,
        messagesPerSecond: Number(args.rate),
        durationMs,
        processes: Number(args.processes),
      });
      await load.ready;
      const [role, pid] = Object.entries(sys.pids)[0] as [string, number];
      const w = watchProcess(pid);
      const r = await load.go();
      const usage = w.stop();
      const seconds = r.publishSeconds + r.ackTailMs / 1000;
      const row = {
        sent: r.sent,
        acked: r.acked,
        ackedPerSecond: r.acked / seconds,
        p50: r.puback.percentile(50),
        p99: r.puback.percentile(99),
        cpu: usage.cpuPercent,
        rss: usage.peakRssMiB,
      };
      runs[system] = [...(runs[system] ?? []), row];
      say(
        `${system} run ${run}: ${fmt(row.ackedPerSecond)} acked msg/s (publishers reached ${fmt(r.achievedMessagesPerSecond)}), ${role} ${fmt(row.cpu)} % CPU`,
      );
    } finally {
      await sys.stop();
    }
  }
}
const col = (s: string, f: (x: (typeof runs)[string][number]) => number, d = 0) =>
  fmtSummary(summarize((runs[s] ?? []).map(f)), d);
console.log(
  [
    `## Broker alone: ${args.devices} devices, QoS 1 single-reading messages offered at ${fmt(Number(args.rate))}/s for ${durationMs / 1000} s, ${args.runs} runs`,
    '',
    table(
      ['broker', 'acknowledged msg/s', 'PUBACK p50 ms', 'PUBACK p99 ms', 'CPU %', 'peak RSS MiB'],
      systems.map((s) => [
        s === 'aedes' ? 'embedded broker (aedes)' : 'Mosquitto (Debian)',
        col(s, (x) => x.ackedPerSecond),
        col(s, (x) => x.p50, 1),
        col(s, (x) => x.p99, 1),
        col(s, (x) => x.cpu),
        col(s, (x) => x.rss),
      ]),
    ),
    '',
    `embedded / Mosquitto: ${fmtSummary(
      summarize(
        (runs.aedes ?? []).map(
          (a, i) => a.ackedPerSecond / (runs.mosquitto?.[i]?.ackedPerSecond ?? Number.NaN),
        ),
      ),
      2,
    )}`,
    `raw: ${writeResult('broker', { args, runs })}`,
  ].join('\n'),
);
// Keep-alive sockets (fetch) must not hold the process open once the table is out.
process.exit(0);
