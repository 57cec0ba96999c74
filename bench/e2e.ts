// End to end, and the peers side by side: a ladder of paced rates per system; a rung passes when it
// ran its whole duration at the target rate with zero loss (every acknowledged reading counted in
// InfluxDB afterwards), every PUBACK back, every latency-probe reading queryable within 30 s, and
// (gateway) the spool not growing nor falling more than 10 s behind. The highest passing
// rung is the sustained rate; one more rung at half of it gives the latencies. Repeated --runs times.
//
//   npx tsx bench/e2e.ts --mode single --systems gateway,node-red,plain
//   npx tsx bench/e2e.ts --mode batch --rates 50000,100000,150000 --duration 60s --runs 3
//   npx tsx bench/e2e.ts --mode single --systems gateway,gateway-tls   (TLS against plain TCP, issue 16)
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { countPoints, influxQuery, waitForCount } from './lib/influx.js';
import { climb } from './lib/ladder.js';
import { startLoad } from './lib/load.js';
import { startProbe } from './lib/probe.js';
import { type ProcessUsage, watchProcess } from './lib/proc.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { MEASUREMENT, metricValue, type SystemName, startSystem } from './lib/systems.js';
import { lastThird, rungFailures } from './lib/verdict.js';

const HELP = `Usage: npx tsx bench/e2e.ts [options]
  --mode single|batch       single-reading messages, or 50-reading batches (default single)
  --systems a,b             gateway, gateway-tls, node-red, plain, mosquitto-gw1, mosquitto-gw2
                            (Mosquitto in front of one or two gateways in external mode; default gateway)
  --rates r1,r2,...         ladder, readings per second (default depends on mode)
  --duration 60s            length of each rung (measured part)
  --warmup 10s              load at the rung's rate before the measured part starts
  --runs 3                  ladders per system (median and range over them)
  --devices 1000            simulated devices (one MQTT connection each)
  --processes 2             publisher processes
  --no-half                 skip the latency rung at half the sustained rate
  --half-for a,b            systems that get the half-rate rung (default: all)
`;

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'single' },
    systems: { type: 'string', default: 'gateway' },
    rates: { type: 'string' },
    duration: { type: 'string', default: '60s' },
    warmup: { type: 'string', default: '10s' },
    runs: { type: 'string', default: '3' },
    devices: { type: 'string', default: '1000' },
    processes: { type: 'string', default: '2' },
    'no-half': { type: 'boolean', default: false },
    'half-for': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const mode = args.mode === 'batch' ? 'batch' : 'single';
const batch = mode === 'batch' ? 50 : 1;
const systems = (args.systems ?? 'gateway').split(',') as SystemName[];
const defaultRates =
  mode === 'batch'
    ? [25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 175_000, 200_000]
    : [2_000, 4_000, 6_000, 8_000, 10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 35_000];
const rates = args.rates ? args.rates.split(',').map(Number) : defaultRates;
const durationMs = parseDuration(args.duration ?? '60s') ?? Number.NaN;
if (!(durationMs > 0)) throw new Error(`--duration: not a duration: ${args.duration} (try 60s)`);
const warmupMs = parseDuration(args.warmup ?? '10s') ?? 10_000;
const runs = Number(args.runs);
const devices = Number(args.devices);
const processes = Number(args.processes);

export interface Rung {
  system: SystemName;
  /** Only when InfluxDB held fewer points than acknowledged: the gateway's counters, and a recount. */
  shortfall?: { gateway?: Record<string, number>; storedAfter30s: number };
  run: number;
  readingsPerSecond: number;
  pass: boolean;
  why: string[];
  achievedReadingsPerSecond: number;
  sent: number;
  acked: number;
  readingsAcked: number;
  /** Readings of the latency probe device, stored in the same database. */
  probeAcked: number;
  stored: number;
  storedAfterSeconds: number;
  pubackMs: { p50: number; p99: number; max: number };
  queryableMs: { p50: number; p99: number; max: number; samples: number; missing: number };
  maxBacklogSeconds: number | null;
  /** The gateway's spool once a second over the window: unwritten bytes, age of the oldest reading. */
  spoolSamples: { t: number; seconds: number; bytes: number }[];
  usage: Record<string, ProcessUsage>;
}

const influx = await startInfluxd();
let dbSeq = 0;

async function runRung(system: SystemName, run: number, readingsPerSecond: number): Promise<Rung> {
  const db = `bench_${system.replace('-', '_')}_${++dbSeq}`;
  const influxPid = influx.pid();
  await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
  const sys = await startSystem(system, { influxUrl: influx.url, db, devices });
  try {
    const load = startLoad({
      url: sys.mqttUrl,
      ...(sys.ca ? { ca: sys.ca } : {}),
      devices: sys.devices,
      batch,
      messagesPerSecond: readingsPerSecond / batch,
      durationMs: warmupMs + durationMs,
      warmupMs,
      processes,
    });
    await load.ready;
    const running = load.go();
    // The measured part starts after the warm-up: fresh processes, a new database and the first
    // series in InfluxDB are a start-up transient, not the steady state a lab runs in.
    await new Promise((r) => setTimeout(r, warmupMs));
    const watchers = Object.entries({ ...sys.pids, influxd: influxPid ?? 0 }).map(
      ([role, pid]) => [role, watchProcess(pid)] as const,
    );
    const backlog: { t: number; seconds: number; bytes: number }[] = [];
    const t0 = performance.now();
    const sampler = setInterval(() => {
      sys
        .spool?.()
        .then((s) => backlog.push({ t: (performance.now() - t0) / 1000, ...s }))
        .catch(() => undefined);
    }, 1000);
    const probe = await startProbe({
      mqttUrl: sys.mqttUrl,
      ...(sys.ca ? { ca: sys.ca } : {}),
      device: sys.probe,
      influxUrl: influx.url,
      db,
    });
    const result = await running;
    const probed = await probe.stop();
    clearInterval(sampler);
    const usage: Record<string, ProcessUsage> = Object.fromEntries(
      watchers.map(([role, w]) => [role, w.stop()]),
    );
    result.publishers.forEach((p, i) => {
      usage[`publisher ${i + 1}`] = p;
    });
    const expected = result.readingsAcked + probed.acked;
    const { stored, seconds } = await waitForCount(
      () => countPoints(influx.url, db, MEASUREMENT, 'spo2'),
      expected,
    );
    // Short of what was acknowledged: late or lost? The gateway's own counters and a recount a
    // while later tell which, so that a loss is never mistaken for a slow write, nor the reverse.
    let shortfall: { gateway?: Record<string, number>; storedAfter30s: number } | undefined;
    // Only the gateway has counters to compare; the peers' losses are Mosquitto's dropped queues.
    if (stored < expected && sys.metrics) {
      const text = await sys.metrics().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30_000));
      shortfall = {
        storedAfter30s: await countPoints(influx.url, db, MEASUREMENT, 'spo2'),
        ...(text
          ? {
              gateway: Object.fromEntries(
                [
                  'livinglab_readings_accepted_total',
                  'livinglab_points_written_total',
                  'livinglab_points_rejected_by_database_total',
                  'livinglab_write_retries_total',
                  'livinglab_spool_bytes',
                ].map((m) => [m, metricValue(text, m)]),
              ),
            }
          : {}),
      };
      say(`${system} run ${run}: ${fmt(expected - stored)} short; ${JSON.stringify(shortfall)}`);
    }
    const why = rungFailures({
      achievedShare: (result.achievedMessagesPerSecond * batch) / readingsPerSecond,
      notAcknowledged: result.failed + result.unacked,
      disconnects: result.disconnects + probed.disconnects,
      ackTailMs: result.ackTailMs,
      expected,
      stored,
      probesMissing: probed.missing,
      spool: sys.spool ? { samples: backlog, windowSeconds: durationMs / 1000 } : undefined,
      ...(sys.front ? { frontQueryableP99Ms: probed.queryable.percentile(99) } : {}),
    });
    const maxBacklog = sys.spool
      ? Math.max(0, ...lastThird(backlog, durationMs / 1000).map((b) => b.seconds))
      : null;
    if (why.length > 0 && sys.output) say(`${system} output (last lines):\n${sys.output().slice(-1500)}`);
    const q = probed.queryable;
    return {
      system,
      run,
      readingsPerSecond,
      pass: why.length === 0,
      why,
      achievedReadingsPerSecond: Math.round(result.achievedMessagesPerSecond * batch),
      sent: result.sent,
      acked: result.acked,
      readingsAcked: result.readingsAcked,
      probeAcked: probed.acked,
      stored,
      storedAfterSeconds: seconds,
      ...(shortfall ? { shortfall } : {}),
      pubackMs: {
        p50: result.puback.percentile(50),
        p99: result.puback.percentile(99),
        max: result.puback.max,
      },
      queryableMs: {
        p50: q.percentile(50),
        p99: q.percentile(99),
        max: q.max,
        samples: q.count,
        missing: probed.missing,
      },
      maxBacklogSeconds: maxBacklog,
      spoolSamples: backlog.map((b) => ({
        t: +b.t.toFixed(1),
        seconds: +b.seconds.toFixed(1),
        bytes: b.bytes,
      })),
      usage,
    };
  } finally {
    await sys.stop();
    await influxQuery(influx.url, undefined, `DROP DATABASE ${db}`).catch(() => undefined);
  }
}

const describe = (r: Rung) =>
  `${r.system} run ${r.run} @ ${fmt(r.readingsPerSecond)} readings/s: ${r.pass ? 'PASS' : `FAIL (${r.why.join('; ')})`}; ` +
  `PUBACK p50/p99 ${fmt(r.pubackMs.p50, 1)}/${fmt(r.pubackMs.p99, 1)} ms, queryable p50/p99 ` +
  `${fmt(r.queryableMs.p50)}/${fmt(r.queryableMs.p99)} ms, ${Object.entries(r.usage)
    .map(([k, u]) => `${k} ${fmt(u.cpuPercent)} % CPU ${fmt(u.peakRssMiB)} MiB`)
    .join(', ')}`;

const rungs: Rung[] = [];
const sustained = new Map<SystemName, Rung[]>();
const atHalf = new Map<SystemName, Rung[]>();
const firstFound = new Map<SystemName, number>();
const noneSustained: { system: SystemName; run: number }[] = [];
try {
  for (let run = 1; run <= runs; run++) {
    for (const system of systems) {
      const found = firstFound.get(system);
      const { best: top } = await climb(
        rates.length,
        found === undefined ? undefined : rates.indexOf(found),
        async (i) => {
          const rate = rates[i] as number;
          say(`${system} run ${run}: ${fmt(rate)} readings/s for ${durationMs / 1000} s`);
          const r = await runRung(system, run, rate);
          rungs.push(r);
          say(describe(r));
          return { pass: r.pass, result: r };
        },
      );
      const best = top?.result;
      if (!best) noneSustained.push({ system, run });
      if (best) {
        sustained.set(system, [...(sustained.get(system) ?? []), best]);
        if (!firstFound.has(system)) firstFound.set(system, best.readingsPerSecond);
        const halfFor = args['half-for']?.split(',');
        if (!args['no-half'] && (!halfFor || halfFor.includes(system))) {
          const half = await runRung(system, run, Math.round(best.readingsPerSecond / 2));
          rungs.push(half);
          say(`half rate: ${describe(half)}`);
          atHalf.set(system, [...(atHalf.get(system) ?? []), half]);
        }
      }
    }
  }
} finally {
  await influx.stop();
}

// The process the table's CPU and RSS columns are about; the parts' own figures follow it.
const mainRoleOf = (s: SystemName) =>
  s === 'mosquitto-gw2'
    ? 'gateway 1'
    : s.startsWith('gateway') || s === 'mosquitto-gw1'
      ? 'gateway'
      : s === 'node-red'
        ? 'node-red'
        : 'subscriber';

const rows = systems.map((s) => {
  const best = sustained.get(s) ?? [];
  const half = atHalf.get(s) ?? [];
  const cpu = (role: string) => summarize(best.map((r) => r.usage[role]?.cpuPercent ?? Number.NaN));
  const mainRole = mainRoleOf(s);
  return [
    s,
    fmtSummary(summarize(best.map((r) => r.readingsPerSecond))),
    `${fmtSummary(summarize(best.map((r) => r.pubackMs.p50)), 1)} / ${fmtSummary(summarize(best.map((r) => r.pubackMs.p99)), 1)}`,
    `${fmtSummary(summarize(half.map((r) => r.pubackMs.p99)), 1)}`,
    `${fmtSummary(summarize(half.map((r) => r.queryableMs.p50)))} / ${fmtSummary(summarize(half.map((r) => r.queryableMs.p99)))}`,
    fmtSummary(cpu(mainRole)),
    fmtSummary(cpu('influxd')),
    fmtSummary(summarize(best.map((r) => r.usage[mainRole]?.peakRssMiB ?? Number.NaN))),
  ];
});
const out = [
  `## End to end, ${mode === 'batch' ? '50-reading batches' : 'single-reading messages'}: ${devices} devices, ${processes} publisher processes, rungs of ${durationMs / 1000} s, ${runs} runs`,
  '',
  table(
    [
      'system',
      'sustained readings/s',
      'PUBACK p50 / p99 ms at sustained',
      'PUBACK p99 ms at half',
      'queryable p50 / p99 ms at half',
      'CPU % (one core = 100)',
      'influxd CPU %',
      'peak RSS MiB',
    ],
    rows,
  ),
];
if (sustained.has('gateway')) {
  const ours = sustained.get('gateway') ?? [];
  for (const peer of systems.filter((s) => s !== 'gateway' && s !== 'gateway-tls')) {
    const theirs = sustained.get(peer) ?? [];
    const ratios = ours.map(
      (o) => o.readingsPerSecond / (theirs.find((t) => t.run === o.run)?.readingsPerSecond ?? Number.NaN),
    );
    out.push('', `gateway / ${peer}, sustained rate per run: ${fmtSummary(summarize(ratios), 1)}`);
  }
}
// Issue 16's target: TLS costs at most 25 % of the plain-TCP sustained rate (ratio at least 0.75).
if (sustained.has('gateway') && sustained.has('gateway-tls')) {
  const tls = sustained.get('gateway-tls') ?? [];
  const tcp = sustained.get('gateway') ?? [];
  const ratios = tls.map(
    (t) => t.readingsPerSecond / (tcp.find((p) => p.run === t.run)?.readingsPerSecond ?? Number.NaN),
  );
  const median = summarize(ratios).median;
  out.push(
    '',
    `gateway-tls / gateway (TLS / plain TCP), sustained rate per run: ${fmtSummary(summarize(ratios), 2)}` +
      ` (target ≥ 0.75: ${median >= 0.75 ? 'met' : 'not met'}; the ladder's rung spacing bounds its precision)`,
  );
}
// CPU per reading of each part at the sustained rung (issue 19): CPU seconds over the window divided
// by the readings of that window, in µs; the basis of the on-paper sizing of k brokers and m gateways.
out.push('', 'CPU per reading at the sustained rate, µs of one core (median and range over runs):', '');
out.push(
  table(
    ['system', 'part', 'CPU µs per reading', 'CPU % at sustained', 'peak RSS MiB'],
    systems.flatMap((s) => {
      const best = sustained.get(s) ?? [];
      const roles = [...new Set(best.flatMap((r) => Object.keys(r.usage)))].filter(
        (role) => !role.startsWith('publisher'),
      );
      return roles.map((role) => [
        s,
        role,
        fmtSummary(
          summarize(
            best.map((r) => ((r.usage[role]?.cpuPercent ?? Number.NaN) * 1e4) / r.achievedReadingsPerSecond),
          ),
          1,
        ),
        fmtSummary(summarize(best.map((r) => r.usage[role]?.cpuPercent ?? Number.NaN))),
        fmtSummary(summarize(best.map((r) => r.usage[role]?.peakRssMiB ?? Number.NaN))),
      ]);
    }),
  ),
);
// A run without a sustained rate has no figure in the medians above: say so, or the table reads
// better than the runs were.
for (const { system, run } of noneSustained)
  out.push('', `${system} run ${run}: no rung passed (not in the medians above)`);
out.push('', 'Failed rungs:');
for (const r of rungs.filter((x) => !x.pass))
  out.push(`- ${r.system} run ${r.run} @ ${fmt(r.readingsPerSecond)}: ${r.why.join('; ')}`);
const file = writeResult(`e2e-${mode}`, { args, rates, rungs });
out.push('', `raw: ${file}`);
console.log(out.join('\n'));
