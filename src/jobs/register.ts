// The gateway's scheduled jobs, by name and config option: liveness, the daily quality report and
// housekeeping. Every enabled schedule is checked before any job is added, so a bad cron string
// stops the gateway at start-up naming its option; nothing here runs a job itself.
import { validate } from 'node-cron';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { SchemaSet } from '../schemas/types.js';
import type { RejectsLog } from '../storage/rejects-log.js';
import { runHousekeeping } from './housekeeping.js';
import type { Liveness } from './liveness.js';
import { buildQualityReport, writeQualityReport } from './quality-report.js';
import type { Scheduler } from './scheduler.js';

export interface JobDeps {
  config: Config;
  scheduler: Pick<Scheduler, 'add'>;
  liveness: Pick<Liveness, 'check'>;
  registry: Pick<Registry, 'current'>;
  schemas: SchemaSet;
  rejects: RejectsLog;
  log: Logger;
}

type JobName = keyof Config['jobs'];

/** The enabled jobs' schedules; throws LL_CONFIG_INVALID naming the option of the first bad one. */
export function checkJobSchedules(jobs: Config['jobs']): void {
  for (const name of Object.keys(jobs) as JobName[]) {
    const job = jobs[name];
    if (job.enabled && !validate(job.schedule))
      throw new GatewayError(
        'LL_CONFIG_INVALID',
        `jobs.${name}.schedule: "${job.schedule}" is not a cron expression (minute hour day month weekday, seconds first if six fields)`,
      );
  }
}

async function runQualityReport(deps: JobDeps): Promise<void> {
  const { config } = deps;
  // The report reads through the InfluxDB 1.x query API.
  if (config.influx.api !== 'v1') return;
  const date = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const report = await buildQualityReport({
    date,
    devices: deps.registry.current().devices.values(),
    schemas: deps.schemas,
    influxUrl: config.influx.url,
    db: config.influx.db,
    dataDir: config.dataDir,
  });
  await writeQualityReport(report, config.dataDir);
}

export function registerJobs(deps: JobDeps): void {
  const { jobs, dataDir } = deps.config;
  checkJobSchedules(jobs);
  if (jobs.liveness.enabled)
    deps.scheduler.add('liveness', jobs.liveness.schedule, () => deps.liveness.check());
  if (jobs.report.enabled)
    deps.scheduler.add('quality-report', jobs.report.schedule, () => runQualityReport(deps));
  if (jobs.housekeeping.enabled) {
    deps.scheduler.add('housekeeping', jobs.housekeeping.schedule, async () => {
      await runHousekeeping({
        dataDir,
        rejects: deps.rejects,
        retentionMs: jobs.housekeeping.retentionMs,
        log: deps.log.child({ module: 'jobs.housekeeping' }),
      });
    });
  }
}
