// Checks a run against the gateway's outcome: every acknowledged valid reading is in InfluxDB exactly
// once with the values sent and tagged provenance=simulated, and every deliberately invalid payload is
// in the rejects log with the expected reason. Reports differences; the caller decides the exit code.
import type { SchemaSet } from '../src/schemas/types.js';
import type { FleetPlan } from './plan.js';
import type { RunRecord } from './runner.js';

export interface VerifyReport {
  readingsExpected: number;
  readingsStored: number;
  missing: number;
  wrongValues: number;
  duplicates: number;
  /** Acknowledged readings found more than once in InfluxDB (in several series). */
  storedTwice: number;
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
    storedTwice: 0,
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
    report.readingsStored += rows.length;
    compareRows(pd.device.id, schema.timeseries.fields, byTime, rows, report, problem);
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
    report.storedTwice === 0 &&
    report.invalidMissing === 0 &&
    report.invalidWrongReason === 0;
  return report;
}

/** Compares one device's stored rows with its acknowledged readings (by time), into `report`. */
function compareRows(
  deviceId: string,
  fields: readonly { name: string }[],
  byTime: Map<number, Record<string, unknown>>,
  rows: Record<string, unknown>[],
  report: VerifyReport,
  problem: (text: string) => void,
): void {
  const stored = new Map(rows.map((r) => [r.time as number, r]));
  const rowsAt = new Map<number, number>();
  for (const r of rows) rowsAt.set(r.time as number, (rowsAt.get(r.time as number) ?? 0) + 1);
  for (const [t, body] of byTime) {
    const at = new Date(t).toISOString();
    const copies = rowsAt.get(t) ?? 0;
    if (copies > 1) {
      // Another series (a tag that differs) holds the same reading again: a duplicate in the data.
      report.storedTwice++;
      problem(`${deviceId} ${at}: stored ${copies} times in InfluxDB, acknowledged once`);
    }
    const row = stored.get(t);
    if (!row) {
      report.missing++;
      problem(`${deviceId}: reading at ${at} was acknowledged but is not in InfluxDB`);
      continue;
    }
    for (const f of fields) {
      if (body[f.name] === undefined) continue;
      if (row[f.name] !== body[f.name]) {
        report.wrongValues++;
        problem(`${deviceId} ${at}: ${f.name} is ${String(row[f.name])}, sent ${String(body[f.name])}`);
      }
    }
    // A simulated reading stored as anything else could pass for a resident's (issue 18).
    if (row.provenance !== 'simulated') {
      report.wrongValues++;
      problem(
        `${deviceId} ${at}: stored with provenance ${String(row.provenance ?? '(none)')}, not simulated`,
      );
    }
  }
}
