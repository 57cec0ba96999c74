// The gateway's scheduled jobs, by name and config option: liveness, the daily quality report and
// housekeeping. Liveness and the report are the lab's and run on the leader only (jobs.leader);
// housekeeping looks after this gateway's own data folder and runs on every gateway. Every enabled
// schedule is checked before any job is added, so a bad cron string stops the gateway at start-up
// naming its option; nothing here runs a job itself. The daily ones
// are caught up when missed (scheduler.ts), so each works from the time it was scheduled for.
import { validate } from 'node-cron';
import { resolveDataPaths } from '../config/data-paths.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { SchemaSet } from '../schemas/types.js';
import { influxReadTarget } from '../storage/influxql.js';
import type { RejectsLog } from '../storage/rejects-log.js';
import { runHousekeeping } from './housekeeping.js';
import { addDays, dayOf, resolveTimeZone } from './lab-day.js';
import type { Liveness } from './liveness.js';
import { buildQualityReport, writeQualityReport } from './quality-report.js';
import { createScheduler, type Scheduler } from './scheduler.js';

export interface JobDeps {
  config: Config;
  scheduler: Pick<Scheduler, 'add'>;
  liveness: Pick<Liveness, 'check'>;
  registry: Pick<Registry, 'current'>;
  schemas: SchemaSet;
  rejects: RejectsLog;
  log: Logger;
}

type JobName = Exclude<keyof Config['jobs'], 'leader'>;
const JOB_NAMES: readonly JobName[] = ['liveness', 'report', 'housekeeping'];

/** The enabled jobs' schedules; throws LL_CONFIG_INVALID naming the option of the first bad one. */
export function checkJobSchedules(jobs: Config['jobs']): void {
  for (const name of JOB_NAMES) {
    const job = jobs[name];
    if (job.enabled && !validate(job.schedule))
      throw new GatewayError(
        'LL_CONFIG_INVALID',
        `jobs.${name}.schedule: "${job.schedule}" is not a cron expression (minute hour day month weekday, seconds first if six fields)`,
      );
  }
}

/** The report of the lab's day before `at` (the scheduled time, which a catch-up run keeps). */
async function runQualityReport(deps: JobDeps, at: Date): Promise<void> {
  const { config } = deps;
  // Both APIs are read through /query: 1.x's own, or 2.x/3.x's v1 compatibility with a token.
  const influx = influxReadTarget(config.influx);
  const timeZone = resolveTimeZone(config.timezone);
  const log = deps.log.child({ module: 'jobs.report' });
  const report = await buildQualityReport({
    date: addDays(dayOf(at.getTime(), timeZone), -1),
    timeZone,
    onUnreadable: (lines) =>
      log.warn(
        { lines: lines.length, first: lines[0] },
        'unreadable lines in the rejects logs skipped; the report counts the rest',
      ),
    devices: deps.registry.current().devices.values(),
    schemas: deps.schemas,
    influxUrl: influx.url,
    db: influx.db,
    ...(influx.auth ? { auth: influx.auth } : {}),
    dataDir: config.dataDir,
  });
  await writeQualityReport(report, config.dataDir);
}

/** The gateway's scheduler: cron read in the lab's time zone, missed daily runs kept in the data folder. */
export function createJobScheduler(config: Config, log: Logger): Scheduler {
  return createScheduler({
    log,
    timeZone: resolveTimeZone(config.timezone),
    stateFile: resolveDataPaths(config.dataDir).jobsState,
  });
}

export function registerJobs(deps: JobDeps): void {
  const { jobs, dataDir } = deps.config;
  checkJobSchedules(jobs);
  // Once per lab, not once per gateway: only the designated gateway judges silence and writes the
  // report (README, "Scaling past one machine", says why a designated one rather than a lease).
  if (jobs.leader && jobs.liveness.enabled)
    deps.scheduler.add('liveness', jobs.liveness.schedule, () => deps.liveness.check());
  if (jobs.leader && jobs.report.enabled)
    deps.scheduler.add('quality-report', jobs.report.schedule, (at) => runQualityReport(deps, at), {
      catchUp: true,
    });
  if (jobs.housekeeping.enabled) {
    const run = async () => {
      await runHousekeeping({
        dataDir,
        rejects: deps.rejects,
        retentionMs: jobs.housekeeping.retentionMs,
        log: deps.log.child({ module: 'jobs.housekeeping' }),
      });
    };
    deps.scheduler.add('housekeeping', jobs.housekeeping.schedule, run, { catchUp: true });
  }
}
