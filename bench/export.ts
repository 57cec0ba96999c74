// Export throughput and memory (issue 18): the rows per second a researcher's export streams out of
// the gateway in each format, and the gateway's peak RSS while it does, for two export sizes so
// that growth with the number of rows shows (a bounded export peaks the same at both).
//
//   npm run build && npx tsx bench/export.ts [--rows 250000,1000000] [--subjects 10]
//     [--formats csv,ndjson,arrow,fhir] [--runs 3]
//
// The readings are written straight to InfluxDB in the gateway's layout (one pulse-oximeter per
// subject, one reading a second, nanosecond timestamps), the gateway runs as its own process (the
// built `livinglab serve`), and this process reads each export over HTTP as a researcher's client
// would: CSV and NDJSON counted by lines, Arrow decoded batch by batch with apache-arrow, FHIR by
// its resources (a row is a reading: two Observations, SpO2 and pulse). Rows/s is end to end (InfluxDB's query, the gateway's encoding,
// this client's read); the CPU of the gateway, of influxd and of this client are reported beside it
// so the share of each is visible, and a row "influxdb alone" per size gives InfluxDB's own rate for
// the same statements, read by this process (bench/lib/influx-alone.ts).

import { parseArgs } from 'node:util';
import { RecordBatchReader } from 'apache-arrow';
import { addProject, issueToken, setConsent } from '../src/registry/research.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { type InfluxAloneRun, influxAlone } from './lib/influx-alone.js';
import { cpuSeconds, rssMiB } from './lib/proc.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { deviceIds, MEASUREMENT, startGatewaySystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '250000,1000000' },
    subjects: { type: 'string', default: '10' },
    formats: { type: 'string', default: 'csv,ndjson,arrow,fhir' },
    runs: { type: 'string', default: '3' },
  },
});
const sizes = args.rows.split(',').map(Number);
const subjects = Number(args.subjects);
const formats = args.formats.split(',');
const runs = Number(args.runs);
const DAY = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);

interface ExportRun {
  rows: number;
  bytes: number;
  seconds: number;
  rowsPerSecond: number;
  gatewayCpuPercent: number;
  influxCpuPercent: number;
  clientCpuPercent: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
}

/** Writes `rows` readings in the gateway's point layout, spread over the subjects' oximeters. */
async function seed(influxUrl: string, db: string, rows: number): Promise<void> {
  await fetch(`${influxUrl}/query`, {
    method: 'POST',
    body: new URLSearchParams({ q: `CREATE DATABASE ${db}` }),
  });
  const ids = deviceIds(subjects);
  const start = (Date.now() - 5 * DAY) * 1_000_000;
  const batch = 50_000;
  for (let i = 0; i < rows; i += batch) {
    let body = '';
    for (let j = i; j < Math.min(rows, i + batch); j++) {
      const s = j % subjects;
      const k = Math.floor(j / subjects);
      // Seconds apart per subject, nanoseconds apart between subjects: every digit of the time counts.
      const ns = BigInt(start) + BigInt(k) * 1_000_000_000n + BigInt(s * 1_001 + 7);
      body += `${MEASUREMENT},device_id=${ids[s]},device_type=pulse-oximeter,probe=finger,provenance=real,schema_version=1,site=bench,subject=p-${s} spo2=${90 + (k % 10)}i,pulse=${60 + (k % 40)}i,perfusionIndex=${(k % 50) / 10 + 0.5} ${ns}\n`;
    }
    const res = await fetch(`${influxUrl}/write?db=${db}`, { method: 'POST', body });
    if (res.status !== 204) throw new Error(`InfluxDB refused the seed: ${res.status} ${await res.text()}`);
  }
}

/** Reads one export to its end and counts its rows the way a client of that format would. */
async function readExport(res: Response, format: string): Promise<{ rows: number; bytes: number }> {
  if (!res.ok || !res.body) throw new Error(`export ${format}: HTTP ${res.status} ${await res.text()}`);
  const body = res.body as unknown as AsyncIterable<Uint8Array>;
  if (format === 'arrow') {
    let rows = 0;
    let bytes = 0;
    const counted = (async function* () {
      for await (const chunk of body) {
        bytes += chunk.length;
        yield chunk;
      }
    })();
    for await (const batch of await RecordBatchReader.from(counted)) rows += batch.numRows;
    return { rows, bytes };
  }
  let lines = 0;
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  }
  if (format === 'csv') return { rows: lines - 1, bytes };
  // One Device resource per device (one per subject here), then an Observation per reading and
  // coded field (spo2 and pulse: perfusionIndex has no code): rows are readings, as in the others.
  if (format === 'fhir') return { rows: (lines - subjects) / CODED_FIELDS, bytes };
  return { rows: lines, bytes };
}

const CODED_FIELDS = 2;

async function exportOnce(
  url: string,
  token: string,
  format: string,
  pid: number,
  influxPid: number,
): Promise<ExportRun> {
  global.gc?.();
  const rssBefore = rssMiB(pid);
  let peak = rssBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 100);
  const cpu0 = cpuSeconds(pid);
  const influxCpu0 = cpuSeconds(influxPid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await fetch(`${url}&format=${format}`, { headers: { authorization: `Bearer ${token}` } });
  const { rows, bytes } = await readExport(res, format);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, rssMiB(pid));
  const client = process.cpuUsage(client0);
  return {
    rows,
    bytes,
    seconds,
    rowsPerSecond: rows / seconds,
    gatewayCpuPercent: ((cpuSeconds(pid) - cpu0) / seconds) * 100,
    influxCpuPercent: ((cpuSeconds(influxPid) - influxCpu0) / seconds) * 100,
    clientCpuPercent: ((client.user + client.system) / 1e6 / seconds) * 100,
    rssBeforeMiB: rssBefore,
    peakRssMiB: peak,
  };
}

const influx = await startInfluxd();
const results: Record<string, Record<string, ExportRun[]>> = {};
const alone: Record<string, InfluxAloneRun[]> = {};
try {
  for (const size of sizes) {
    const db = `bench_export_${size}`;
    say(`writing ${size.toLocaleString('en')} readings to InfluxDB`);
    await seed(influx.url, db, size);
    let token = '';
    const gw = await startGatewaySystem({
      influxUrl: influx.url,
      db,
      devices: subjects,
      registry: (d0) => {
        let d = addProject(d0, {
          id: 'bench',
          from: day(-10),
          to: day(1),
          types: ['pulse-oximeter'],
        });
        for (let s = 0; s < subjects; s++) d = setConsent(d, 'bench', `p-${s}`, { on: day(-10) });
        const issued = issueToken(d, {
          project: 'bench',
          researcher: 'bench',
          expires: new Date(Date.now() + DAY),
        });
        token = issued.token;
        return issued.data;
      },
    });
    try {
      const base = gw.httpUrl;
      if (!base) throw new Error('the gateway system has no HTTP URL');
      const url = `${base}/api/v1/projects/bench/readings?type=pulse-oximeter`;
      results[size] = {};
      for (const format of formats) {
        const per: ExportRun[] = [];
        for (let run = 1; run <= runs; run++) {
          const r = await exportOnce(url, token, format, gw.pids.gateway ?? 0, influx.pid() ?? 0);
          if (r.rows !== size) throw new Error(`export ${format}: ${r.rows} rows, expected ${size}`);
          say(`${size} ${format} run ${run}: ${fmt(r.rowsPerSecond)} rows/s, peak ${fmt(r.peakRssMiB)} MiB`);
          per.push(r);
        }
        (results[size] as Record<string, ExportRun[]>)[format] = per;
      }
      const range = { fromMs: Date.now() - 10 * DAY, toMs: Date.now() + DAY };
      alone[size] = [];
      for (let run = 1; run <= runs; run++) {
        const r = await influxAlone(influx.url, db, subjects, range, influx.pid() ?? 0);
        if (r.rows !== size) throw new Error(`InfluxDB alone: ${r.rows} rows, expected ${size}`);
        say(`${size} influxdb alone run ${run}: ${fmt(r.rowsPerSecond)} rows/s`);
        alone[size]?.push(r);
      }
    } finally {
      await gw.stop();
    }
  }
} finally {
  await influx.stop();
}

const rowsOut: string[][] = [];
for (const [size, byFormat] of Object.entries(results))
  for (const [format, per] of Object.entries(byFormat)) {
    const s = (f: (r: ExportRun) => number, digits = 0) => fmtSummary(summarize(per.map(f)), digits);
    rowsOut.push([
      Number(size).toLocaleString('en'),
      format,
      s((r) => r.rowsPerSecond),
      s((r) => r.bytes / r.rows, 1),
      s((r) => r.gatewayCpuPercent),
      s((r) => r.influxCpuPercent),
      s((r) => r.clientCpuPercent),
      s((r) => r.rssBeforeMiB),
      s((r) => r.peakRssMiB),
      s((r) => r.peakRssMiB - r.rssBeforeMiB),
    ]);
  }
for (const [size, per] of Object.entries(alone)) {
  const s = (f: (r: InfluxAloneRun) => number) => fmtSummary(summarize(per.map(f)), 0);
  rowsOut.push([
    Number(size).toLocaleString('en'),
    'influxdb alone',
    s((r) => r.rowsPerSecond),
    '–',
    '–',
    s((r) => r.influxCpuPercent),
    '–',
    '–',
    '–',
    '–',
  ]);
}
console.log(
  table(
    [
      'rows',
      'format',
      'rows/s',
      'bytes/row',
      'gateway CPU %',
      'influxd CPU %',
      'client CPU %',
      'gateway RSS before MiB',
      'peak RSS MiB',
      'growth MiB',
    ],
    rowsOut,
  ),
);
say(`raw results: ${writeResult('export', { sizes, subjects, formats, runs, results, influxAlone: alone })}`);
