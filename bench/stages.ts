// Stage ceilings, each measured alone in this process so we see where the gateway's time goes:
//   parse  — JSON.parse + schema validation + mapping + line protocol, per reading (single, batch)
//   spool  — group-committed appends with fdatasync per second, from many concurrent devices
//   influx — points per second written to a real influxd at the batch sizes the drain uses
//
//   npx tsx bench/stages.ts [--only parse,spool,influx] [--runs 3] [--duration 5s]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { toPoint } from '../src/ingest/map.js';
import { parseTopic } from '../src/ingest/route.js';
import { validatePayload } from '../src/ingest/validate.js';
import { createLogger } from '../src/log.js';
import { packageRoot } from '../src/paths.js';
import type { Device } from '../src/registry/types.js';
import { loadSchemas } from '../src/schemas/load.js';
import { createInfluxV1Writer } from '../src/storage/influx-v1.js';
import { toLine } from '../src/storage/line-protocol.js';
import { createSpool } from '../src/storage/spool/index.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'parse,spool,influx' },
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5s' },
  },
});
const runs = Number(args.runs);
const durationMs = parseDuration(args.duration ?? '5s') ?? 5000;
const only = new Set((args.only ?? '').split(','));
const rows: string[][] = [];
const raw: Record<string, number[]> = {};
const record = (stage: string, unit: string, values: number[], note: string) => {
  raw[stage] = values;
  rows.push([stage, unit, fmtSummary(summarize(values)), note]);
  say(`${stage}: ${values.map((v) => fmt(v)).join(' · ')} ${unit}`);
};

const reading = (ts: number, k: number) => ({
  ts: new Date(ts).toISOString(),
  spo2: 90 + (k % 10),
  pulse: 55 + (k % 40),
});

if (only.has('parse')) {
  const schemas = loadSchemas(join(packageRoot(), 'device-schemas'));
  const device: Device = {
    id: 'ox-00001',
    type: 'pulse-oximeter',
    site: 'bench',
    schemaVersion: 1,
    vendor: 'bench',
    passwordHash: '',
    enabled: true,
    assignments: [],
  };
  const topic = 'lab/bench/pulse-oximeter/ox-00001/telemetry';
  const window = { maxFutureMs: 300_000, maxAgeMs: 7 * 86_400_000 };
  for (const batch of [1, 50]) {
    const now = Date.now();
    const payloads = Array.from({ length: 1000 }, (_, m) => {
      const rs = Array.from({ length: batch }, (_, k) => reading(now - 60_000 + m * batch + k, m + k));
      return Buffer.from(JSON.stringify(batch === 1 ? rs[0] : { readings: rs }));
    });
    const perRun: number[] = [];
    for (let run = 0; run < runs; run++) {
      let readings = 0;
      let bytes = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < durationMs) {
        for (const payload of payloads) {
          const route = parseTopic(topic, device, schemas);
          if ('reason' in route || route.channel === 'status') throw new Error('topic not routed');
          const received = new Date();
          const v = validatePayload(payload, route.schema, { maxBatchReadings: 1000 });
          const lines: string[] = [];
          for (const r of v.readings) {
            const p = toPoint(r.value, r.index, route.schema, device, received, window);
            if ('reason' in p) throw new Error(JSON.stringify(p.errors));
            lines.push(toLine(p));
          }
          bytes += Buffer.byteLength(lines.join('\n'));
          readings += lines.length;
        }
      }
      perRun.push(readings / ((performance.now() - t0) / 1000));
      if (bytes === 0) throw new Error('nothing mapped');
    }
    record(
      `parse + validate + map + line protocol, ${batch === 1 ? 'single readings' : '50-reading batches'}`,
      'readings/s (one core)',
      perRun,
      `${fmt(1e6 / (summarize(perRun).median || 1), 1)} µs per reading`,
    );
  }
}

if (only.has('spool')) {
  const log = createLogger({ level: 'warn' });
  const line = Buffer.from(
    'pulse_oximeter,device_id=ox-00001,device_type=pulse-oximeter,site=bench spo2=97i,pulse=72i 1763805600123000000',
  );
  for (const writers of [1, 100, 1000]) {
    const perRun: number[] = [];
    for (let run = 0; run < runs; run++) {
      const dir = await mkdtemp(join(tmpdir(), 'll-bench-spool-'));
      const spool = createSpool({ dir, maxBytes: 2 ** 34, log });
      await spool.start();
      let appends = 0;
      const t0 = performance.now();
      // Each writer is a device: one append at a time, the next after its fsync (as aedes does).
      await Promise.all(
        Array.from({ length: writers }, async () => {
          while (performance.now() - t0 < durationMs) {
            await spool.append([line]);
            appends++;
          }
        }),
      );
      perRun.push(appends / ((performance.now() - t0) / 1000));
      await spool.stop();
      await rm(dir, { recursive: true, force: true });
    }
    record(
      `spool appends (group commit, O_DSYNC), ${writers} concurrent writer${writers === 1 ? '' : 's'}`,
      'appends/s',
      perRun,
      `${line.length}-byte records, group commit`,
    );
  }
}

if (only.has('influx')) {
  const influx = await startInfluxd();
  try {
    for (const batchSize of [50, 500, 5000]) {
      const perRun: number[] = [];
      for (let run = 0; run < runs; run++) {
        const db = `bench_write_${batchSize}_${run}`;
        const writer = createInfluxV1Writer({ url: influx.url, db, timeoutMs: 30_000 });
        await writer.start();
        let points = 0;
        let ts = Date.now() - 3_600_000;
        const t0 = performance.now();
        // Two writes in flight, as the drain's default --write-concurrency.
        await Promise.all(
          [0, 1].map(async () => {
            while (performance.now() - t0 < durationMs) {
              const lines = Array.from(
                { length: batchSize },
                (_, k) =>
                  `pulse_oximeter,device_id=ox-${String(k % 1000).padStart(5, '0')},device_type=pulse-oximeter,site=bench spo2=${90 + (k % 10)}i,pulse=72i ${++ts}000000`,
              );
              const r = await writer.write(lines);
              if (!r.ok) throw new Error(r.message);
              points += batchSize;
            }
          }),
        );
        perRun.push(points / ((performance.now() - t0) / 1000));
        await writer.stop();
      }
      record(
        `InfluxDB 1.6 /write, batches of ${batchSize}`,
        'points/s',
        perRun,
        `${fmt(1e6 / (summarize(perRun).median || 1), 1)} µs per point (2 writes in flight)`,
      );
    }
  } finally {
    await influx.stop();
  }
}

console.log(
  [
    `## Stage ceilings (${runs} runs of ${durationMs / 1000} s each)`,
    '',
    table(['stage', 'unit', 'median (min–max)', 'note'], rows),
    '',
    `raw: ${writeResult('stages', { args, raw })}`,
  ].join('\n'),
);
// Keep-alive sockets (fetch) must not hold the process open once the table is out.
process.exit(0);
