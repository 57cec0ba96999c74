// The layout of the data folder (`dataDir`), stated once: every module that reads or writes a file
// there takes its path from here, so that the writer of a log and its readers (housekeeping, the
// quality report, `simulate --verify`, `audit verify`) can never disagree. Pure: never touches the
// disk and imports nothing but node:path, so every layer above config may use it.
import { join } from 'node:path';

/** The logs that housekeeping rotates to `{name}-{time}.ndjson` beside the current one. */
export type RotatedLog = 'rejects' | 'events';

/** Rotated rejects and events logs, the ones housekeeping deletes after the retention. */
export const ROTATED_LOG_NAME = /^(rejects|events)-.+\.ndjson$/;
/** The current and the rotated rejects logs: what the quality report counts. */
export const REJECTS_LOG_NAME = /^rejects(-.+)?\.ndjson$/;

export interface DataPaths {
  /** Bad input and writes InfluxDB refused (storage/rejects-log.ts). */
  readonly rejectsLog: string;
  /** Liveness and battery events (jobs/liveness.ts). */
  readonly eventsLog: string;
  /** The hash-chained export audit log (query/audit.ts). */
  readonly auditLog: string;
  /** The spool's segment files (storage/spool). */
  readonly spool: string;
  /** Daily quality reports (jobs/quality-report.ts). */
  readonly reports: string;
  /** Ground truth of simulated fleet runs (cli/simulate.ts). */
  readonly simulations: string;
  /** The running gateway's lock socket (storage/data-lock.ts). */
  readonly lock: string;
  /** Where a log rotated at `at` goes; the time is in the name, with ":" and "." made file-safe. */
  rotatedLog(log: RotatedLog, at: Date): string;
}

export function resolveDataPaths(dataDir: string): DataPaths {
  return {
    rejectsLog: join(dataDir, 'rejects.ndjson'),
    eventsLog: join(dataDir, 'events.ndjson'),
    auditLog: join(dataDir, 'audit.ndjson'),
    spool: join(dataDir, 'spool'),
    reports: join(dataDir, 'reports'),
    simulations: join(dataDir, 'simulations'),
    lock: join(dataDir, 'lock'),
    rotatedLog: (log, at) => join(dataDir, `${log}-${at.toISOString().replace(/[:.]/g, '-')}.ndjson`),
  };
}
