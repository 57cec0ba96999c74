// Job schedules are checked when the gateway is built, before anything listens or runs.
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { GatewayError } from '../../src/errors.js';
import { checkJobSchedules } from '../../src/jobs/register.js';
import { createLogger } from '../../src/log.js';

const jobsWith = (job: string, fields: Record<string, string | boolean>) =>
  loadConfig({ flags: { jobs: { [job]: fields } } });

describe('job schedules', () => {
  it.each([
    ['liveness', 'jobs.liveness.schedule'],
    ['report', 'jobs.report.schedule'],
    ['housekeeping', 'jobs.housekeeping.schedule'],
  ])('refuses a bad %s schedule with LL_CONFIG_INVALID naming %s', (job, option) => {
    const config = jobsWith(job, { schedule: 'every tuesday' });
    let thrown: unknown;
    try {
      checkJobSchedules(config.jobs);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    expect(thrown).toMatchObject({ code: 'LL_CONFIG_INVALID' });
    expect((thrown as Error).message).toContain(`${option}: "every tuesday" is not a cron expression`);
  });

  it('accepts the defaults, seconds-first schedules, and a bad schedule of a disabled job', () => {
    expect(() => checkJobSchedules(loadConfig().jobs)).not.toThrow();
    expect(() => checkJobSchedules(jobsWith('liveness', { schedule: '*/5 * * * * *' }).jobs)).not.toThrow();
    const disabled = jobsWith('report', { enabled: false, schedule: 'every tuesday' });
    expect(() => checkJobSchedules(disabled.jobs)).not.toThrow();
  });

  it('stops buildApp before any part is created', () => {
    const config = jobsWith('housekeeping', { schedule: '61 * * * *' });
    expect(() => buildApp(config, { log: createLogger({ level: 'silent' }) })).toThrow(
      /jobs\.housekeeping\.schedule: "61 \* \* \* \*" is not a cron expression/,
    );
  });
});
