// Checks a run against the gateway's outcome: every acknowledged valid reading is in InfluxDB exactly
// once with the values sent, and every deliberately invalid payload is in the rejects log with the
// expected reason. Reports differences; the caller decides the exit code.
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

/**
 * How a check reads the gateway's outcome. The command line passes the gateway's own InfluxQL
 * client and rejects-log reader: simulators talk to the gateway like a vendor's devices and import
 * nothing of its storage.
 */
export interface OutcomeReader {
  /** The stored rows of one device in one measurement, time (epoch ms) included, from..to inclusive. */
  readings(
    measurement: string,
    deviceId: string,
    fromMs: number,
    toMs: number,
  ): Promise<Record<string, unknown>[]>;
  rejects(): AsyncIterable<{ clientId: string; payload: string; rejections: readonly { reason: string }[] }>;
}

export async function verifyRun(opts: {
  plan: FleetPlan;
  record: RunRecord;
  schemas: SchemaSet;
  outcome: OutcomeReader;
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
    const rows = await opts.outcome.readings(schema.timeseries.measurement, pd.device.id, from, to);
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
  const rejects = new Map<string, Set<string>>();
  for await (const e of opts.outcome.rejects()) {
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
