// The layout of the data folder (`dataDir`), stated once: every module that reads or writes a file
// there takes its path from here, so that the writer of a log and its readers (housekeeping, the
// quality report, `simulate --verify`, `audit verify`) can never disagree. Pure: never touches the
// disk and imports nothing but node:path, so every layer above config may use it.
import { join } from 'node:path';

/** The logs that housekeeping rotates to `{name}-{time}.ndjson` beside the current one. */
export type RotatedLog = 'rejects' | 'events';

/**
 * Rotated rejects and events logs exactly as rotatedLog() names them, the ones housekeeping
 * deletes after the retention; group 2 is the rotation time. An operator's `rejects-notes.ndjson`
 * does not match and is never deleted.
 */
export const ROTATED_LOG_NAME = /^(rejects|events)-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z)\.ndjson$/;
/** The files of one day's quality report exactly as reportFiles() names them; group 1 is the day. */
export const REPORT_NAME = /^(\d{4}-\d\d-\d\d)(\.json|\.md|-completeness\.svg)$/;

/** The names of the quality report of `date` (YYYY-MM-DD), under the reports folder. */
export const reportFiles = (date: string) =>
  [`${date}.json`, `${date}.md`, `${date}-completeness.svg`] as const;

/**
 * When a file the gateway wrote was made, read from its name (a rotated log's time, a report's
 * day): never the file's mtime, which a copy or a backup restore changes. Undefined for any name
 * the gateway does not write, so such a file is never judged old.
 */
export function createdAtOfName(name: string): number | undefined {
  const log = ROTATED_LOG_NAME.exec(name);
  const text = log
    ? (log[2] as string).replace(/T(\d\d)-(\d\d)-(\d\d)-(\d{3})Z$/, 'T$1:$2:$3.$4Z')
    : REPORT_NAME.exec(name)?.[1];
  if (text === undefined) return undefined;
  const at = Date.parse(text);
  // Date.parse rolls 2026-02-30 over to March; a name that does not round-trip is not ours.
  return Number.isNaN(at) || new Date(at).toISOString().slice(0, text.length) !== text.slice(0, 24)
    ? undefined
    : at;
}
/** The current and the rotated rejects logs: what the quality report counts. */
export const REJECTS_LOG_NAME = /^rejects(-.+)?\.ndjson$/;

export interface DataPaths {
  /** Bad input and writes InfluxDB refused (storage/rejects-log.ts). */
  readonly rejectsLog: string;
  /** Liveness and battery events (jobs/liveness.ts). */
  readonly eventsLog: string;
  /** The audit log of exports and registry changes, sealed with the audit key (query/audit.ts). */
  readonly auditLog: string;
  /** The spool's segment files (storage/spool). */
  readonly spool: string;
  /** Daily quality reports (jobs/quality-report.ts). */
  readonly reports: string;
  /** Ground truth of simulated fleet runs (cli/simulate.ts). */
  readonly simulations: string;
  /** The last successful run of each daily job, so missed runs are caught up (jobs/scheduler.ts). */
  readonly jobsState: string;
  /** Each device's last seen time, silence, battery warning and retained status (jobs/liveness-state.ts). */
  readonly livenessState: string;
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
    jobsState: join(dataDir, 'jobs.json'),
    livenessState: join(dataDir, 'liveness.json'),
    lock: join(dataDir, 'lock'),
    rotatedLog: (log, at) => join(dataDir, `${log}-${at.toISOString().replace(/[:.]/g, '-')}.ndjson`),
  };
}
