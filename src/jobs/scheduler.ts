// Scheduled jobs (node-cron): each named, switchable, run one at a time, logged when it fails, and
// counted (runs and failures) for /metrics.
import { type ScheduledTask, schedule, validate } from 'node-cron';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

export interface JobStats {
  runs: number;
  failures: number;
  lastRunAt?: number;
}

export interface Scheduler {
  add(name: string, cron: string, run: () => Promise<void>): void;
  readonly stats: ReadonlyMap<string, JobStats>;
  stop(): Promise<void>;
}

export function createScheduler(deps: { log: Logger }): Scheduler {
  const tasks: ScheduledTask[] = [];
  const stats = new Map<string, JobStats>();
  return {
    stats,
    add(name, cron, run) {
      if (!validate(cron))
        throw new GatewayError('LL_CONFIG_INVALID', `job ${name}: "${cron}" is not a cron expression`);
      const s: JobStats = { runs: 0, failures: 0 };
      stats.set(name, s);
      tasks.push(
        schedule(
          cron,
          async () => {
            s.runs++;
            s.lastRunAt = Date.now();
            try {
              await run();
            } catch (err) {
              s.failures++;
              deps.log.error({ job: name, err }, 'scheduled job failed');
            }
          },
          { name, noOverlap: true },
        ),
      );
    },
    async stop() {
      for (const t of tasks) await t.stop();
    },
  };
}
