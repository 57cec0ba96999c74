// InfluxDB alone, for the export bench (issue 18): the statements the gateway sends for an export
// of the bench's data (one per subject, tags and fields as columns, RFC 3339 times, chunked,
// uncompressed, read side by side), answered straight to this process, which parses each chunk as
// the gateway does. Its rate, and influxd's CPU, measured in the same run as the gateway's exports,
// show how much of an export's time is InfluxDB's.

import { buildStatement } from '../../src/query/readings-stream.js';
import { cpuSeconds } from './proc.js';
import { MEASUREMENT } from './systems.js';

const TYPE = {
  type: 'pulse-oximeter',
  measurement: MEASUREMENT,
  tags: ['probe'],
  fields: ['spo2', 'pulse', 'perfusionIndex', 'battery'],
};

/** Rows of one chunked statement, counted by parsing each chunk (a JSON line) as the gateway does. */
async function readStatement(url: string, db: string, statement: string, chunkSize: number): Promise<number> {
  const qs = new URLSearchParams({ db, chunked: 'true', chunk_size: String(chunkSize), q: statement });
  const res = await fetch(`${url}/query?${qs}`, { headers: { 'accept-encoding': 'identity' } });
  if (!res.ok || !res.body) throw new Error(`InfluxDB: HTTP ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffered = '';
  let rows = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const searched = buffered.length;
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf('\n', searched);
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      const body = JSON.parse(line) as { results: { series?: { values: unknown[] }[]; error?: string }[] };
      if (body.results[0]?.error) throw new Error(`InfluxDB: ${body.results[0].error}`);
      for (const s of body.results[0]?.series ?? []) rows += s.values.length;
    }
  }
  return rows;
}

export interface InfluxAloneRun {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  influxCpuPercent: number;
}

/** The export's statements for subjects p-0 … p-(subjects-1), all at once, as the gateway's merge reads them. */
export async function influxAlone(
  url: string,
  db: string,
  subjects: number,
  range: { fromMs: number; toMs: number },
  influxPid: number,
): Promise<InfluxAloneRun> {
  // The gateway's chunk for this many streams (readings-stream.ts streamReadings).
  const chunkSize = Math.max(100, Math.min(5000, Math.floor(25_000 / subjects)));
  const q = { includeSimulated: false } as Parameters<typeof buildStatement>[0];
  const statements = Array.from({ length: subjects }, (_, s) =>
    buildStatement(q, TYPE, { subject: `p-${s}`, ...range }),
  );
  const cpu0 = cpuSeconds(influxPid);
  const t0 = performance.now();
  const counts = await Promise.all(statements.map((st) => readStatement(url, db, st, chunkSize)));
  const seconds = (performance.now() - t0) / 1000;
  const rows = counts.reduce((a, b) => a + b, 0);
  return {
    rows,
    seconds,
    rowsPerSecond: rows / seconds,
    influxCpuPercent: ((cpuSeconds(influxPid) - cpu0) / seconds) * 100,
  };
}
