// Checks a run against the gateway's outcome: every acknowledged valid reading is in InfluxDB exactly
// once with the values sent, and every deliberately invalid payload is in the rejects log with the
// expected reason. Reports differences; the caller decides the exit code.
import { readFile } from 'node:fs/promises';
import type { SchemaSet } from '../src/schemas/types.js';
import type { FleetPlan } from './plan.js';
import type { RunRecord } from './runner.js';

export interface VerifyReport {
  readingsExpected: number;
  readingsStored: number;
  missing: number;
  wrongValues: number;
  duplicates: number;
  invalidExpected: number;
  invalidConfirmed: number;
  invalidWrongReason: number;
  invalidMissing: number;
  problems: string[];
  ok: boolean;
}

interface QueryResult {
  results: { series?: { columns: string[]; values: unknown[][] }[]; error?: string }[];
}

async function query(url: string, db: string, q: string): Promise<Record<string, unknown>[]> {
  // epoch=ms: simulated timestamps have millisecond resolution, and ms fit a JSON number exactly.
  const res = await fetch(`${url}/query?db=${encodeURIComponent(db)}&epoch=ms&q=${encodeURIComponent(q)}`);
  const body = (await res.json()) as QueryResult;
  const out: Record<string, unknown>[] = [];
  for (const s of body.results[0]?.series ?? []) {
    for (const v of s.values) out.push(Object.fromEntries(s.columns.map((c, i) => [c, v[i]])));
  }
  return out;
}

export async function verifyRun(opts: {
  plan: FleetPlan;
  record: RunRecord;
  schemas: SchemaSet;
  influxUrl: string;
  db: string;
  rejectsLog: string;
}): Promise<VerifyReport> {
  const report: VerifyReport = {
    readingsExpected: 0,
    readingsStored: 0,
    missing: 0,
    wrongValues: 0,
    duplicates: 0,
    invalidExpected: opts.record.invalid.length,
    invalidConfirmed: 0,
    invalidWrongReason: 0,
    invalidMissing: 0,
    problems: [],
    ok: false,
  };
  const problem = (text: string) => {
    if (report.problems.length < 50) report.problems.push(text);
  };
  for (const pd of opts.plan.devices) {
    const expected = opts.record.acked.get(pd.device.id) ?? [];
    if (expected.length === 0) continue;
    const schema = opts.schemas.latest(pd.device.type);
    if (!schema) continue;
    const byTime = new Map<number, Record<string, unknown>>();
    for (const r of expected) {
      const t = Date.parse(r.ts);
      if (byTime.has(t)) report.duplicates++;
      byTime.set(t, r.body);
    }
    report.readingsExpected += byTime.size;
    const times = [...byTime.keys()];
    const from = Math.min(...times);
    const to = Math.max(...times);
    const rows = await query(
      opts.influxUrl,
      opts.db,
      `SELECT * FROM "${schema.timeseries.measurement}" WHERE device_id = '${pd.device.id}' AND time >= ${from}ms AND time <= ${to}ms`,
    );
    const stored = new Map(rows.map((r) => [r.time as number, r]));
    report.readingsStored += rows.length;
    for (const [t, body] of byTime) {
      const row = stored.get(t);
      if (!row) {
        report.missing++;
        problem(
          `${pd.device.id}: reading at ${new Date(t).toISOString()} was acknowledged but is not in InfluxDB`,
        );
        continue;
      }
      for (const f of schema.timeseries.fields) {
        if (body[f.name] === undefined) continue;
        if (row[f.name] !== body[f.name]) {
          report.wrongValues++;
          problem(
            `${pd.device.id} ${new Date(t).toISOString()}: ${f.name} is ${String(row[f.name])}, sent ${String(body[f.name])}`,
          );
        }
      }
    }
  }
  const text = await readFile(opts.rejectsLog, 'utf8').catch(() => '');
  const rejects = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { clientId: string; payload: string; rejections: { reason: string }[] };
    const key = `${e.clientId}\u0000${e.payload}`;
    const reasons = rejects.get(key) ?? new Set<string>();
    for (const r of e.rejections) reasons.add(r.reason);
    rejects.set(key, reasons);
  }
  for (const inv of opts.record.invalid) {
    const reasons = rejects.get(`${inv.device}\u0000${inv.payload}`);
    if (!reasons) {
      report.invalidMissing++;
      problem(
        `${inv.device}: deliberately invalid payload (${inv.kind}) sent at ${inv.at} is not in the rejects log`,
      );
    } else if (!reasons.has(inv.expectedReason)) {
      report.invalidWrongReason++;
      problem(
        `${inv.device}: invalid payload (${inv.kind}) rejected as ${[...reasons].join(', ')}, expected ${inv.expectedReason}`,
      );
    } else {
      report.invalidConfirmed++;
    }
  }
  report.ok =
    report.missing === 0 &&
    report.wrongValues === 0 &&
    report.invalidMissing === 0 &&
    report.invalidWrongReason === 0;
  return report;
}
