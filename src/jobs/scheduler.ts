// Scheduled jobs (node-cron): each named, switchable, run one at a time, logged when it fails, and
// counted (runs and failures) for /metrics. Schedules follow the lab's time zone. A daily job
// marked `catchUp` never loses a run: node-cron drops a run that fires more than a second late
// (its missedExecutionTolerance) and knows nothing of runs missed while the gateway was down, so
// the last successful run of such a job is kept in the data folder, and at start and on every tick
// the scheduler runs the latest occurrence that is due.
import { readFile } from 'node:fs/promises';
import { parse, type ScheduledTask, schedule, validate } from 'node-cron';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../registry/atomic-write.js';

export interface JobStats {
  runs: number;
  failures: number;
  lastRunAt?: number;
}

/** A job's work; `at` is the scheduled time it runs for (a catch-up run gets the time it missed). */
export type JobRun = (at: Date) => Promise<void>;

export interface Scheduler {
  add(name: string, cron: string, run: JobRun, opts?: { catchUp?: boolean }): void;
  readonly stats: ReadonlyMap<string, JobStats>;
  /** Runs every catch-up job whose latest scheduled time has no successful run yet. */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

export interface SchedulerDeps {
  log: Logger;
  /** IANA time zone the cron expressions are read in (default: the system's). */
  timeZone?: string;
  /** Where catch-up jobs record their last successful run; without it nothing is caught up. */
  stateFile?: string;
  now?: () => number;
  /** How often catch-up jobs are checked; 0: only by tick() (tests). */
  tickMs?: number;
}

/** Occurrences further back than this are not caught up (a gateway off for weeks). */
const CATCH_UP_WINDOW_MS = 2 * 86_400_000;
const MINUTE = 60_000;

type State = Record<string, { lastRunAt: string }>;

/** The state file; anything but an object (none yet, torn, `null`) is an empty state. */
async function readState(file: string): Promise<State> {
  try {
    const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
    return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as State) : {};
  } catch {
    return {};
  }
}

/** Replaced atomically and fsynced with its folder: a run recorded is not forgotten after a crash. */
async function writeState(file: string, state: State): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(state, null, 1)}\n`, 0o600);
}

interface CatchUpJob {
  readonly name: string;
  readonly run: JobRun;
  /** Its node-cron task: what it matches is read in the scheduler's time zone. */
  readonly matcher: Pick<ScheduledTask, 'match'>;
  /** The seconds field of its expression (0 for five fields): where in a minute it can fire. */
  readonly seconds: readonly number[];
  /** Up to here the schedule was scanned without finding a due occurrence. */
  scannedUpTo: number;
  /** After a failed run: not again before this. */
  retryAt: number;
}

/**
 * The latest time in (after, upTo] that the job's schedule names, scanning minute by minute. One
 * match costs about 65 µs (Intl in the time zone): a day of minutes is ~95 ms, so the scan yields
 * to the event loop every few hundred minutes and never holds up acknowledgements.
 */
async function latestOccurrence(job: CatchUpJob, after: number, upTo: number): Promise<number | undefined> {
  let scanned = 0;
  for (let minute = Math.floor(upTo / MINUTE) * MINUTE; minute > after - MINUTE; minute -= MINUTE) {
    if (++scanned % 200 === 0) await new Promise((r) => setImmediate(r));
    for (let i = job.seconds.length - 1; i >= 0; i--) {
      const at = minute + (job.seconds[i] as number) * 1000;
      if (at > after && at <= upTo && job.matcher.match(new Date(at))) return at;
    }
  }
  return undefined;
}

/** After a failed catch-up run, the next attempt waits this long (InfluxDB down for the report). */
const RETRY_MS = 10 * MINUTE;

/**
 * Runs a catch-up job for its latest due occurrence, once, and records it when it succeeded. A job
 * seen for the first time owes nothing from before: a new gateway does not start with a report of
 * a day it never saw.
 */
async function runCatchUp(c: {
  job: CatchUpJob;
  file: string;
  state: State;
  now: number;
  log: Logger;
  execute: (name: string, at: Date, run: JobRun) => Promise<boolean>;
}): Promise<void> {
  const { job, file, state: st, now: t } = c;
  if (t < job.retryAt) return;
  const recorded = st[job.name];
  const last = typeof recorded?.lastRunAt === 'string' ? Date.parse(recorded.lastRunAt) : Number.NaN;
  // A run recorded in the future (the clock was ahead, then set right) or at no valid time would
  // put every later occurrence before it, and the job would never run again: start afresh.
  if (recorded && (Number.isNaN(last) || last > t + MINUTE))
    c.log.warn(
      { job: job.name, file, lastRunAt: recorded.lastRunAt },
      'job state names no past run: starting afresh',
    );
  if (!recorded || Number.isNaN(last) || last > t + MINUTE) {
    st[job.name] = { lastRunAt: new Date(t).toISOString() };
    await writeState(file, st);
    job.scannedUpTo = t;
    return;
  }
  const from = Math.max(last, job.scannedUpTo, t - CATCH_UP_WINDOW_MS);
  const due = await latestOccurrence(job, from, t);
  if (due === undefined) {
    job.scannedUpTo = t;
    return;
  }
  if (due < t - MINUTE)
    c.log.warn({ job: job.name, missed: new Date(due).toISOString() }, 'catching up a missed run');
  if (!(await c.execute(job.name, new Date(due), job.run))) {
    job.retryAt = t + RETRY_MS;
    return;
  }
  st[job.name] = { lastRunAt: new Date(due).toISOString() };
  await writeState(file, st);
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const now = deps.now ?? Date.now;
  const tasks: ScheduledTask[] = [];
  const stats = new Map<string, JobStats>();
  const catchUps: CatchUpJob[] = [];
  let state: Promise<State> | undefined;
  let ticking: Promise<void> = Promise.resolve();

  const execute = async (name: string, at: Date, run: JobRun): Promise<boolean> => {
    const s = stats.get(name) as JobStats;
    s.runs++;
    s.lastRunAt = now();
    try {
      await run(at);
      return true;
    } catch (err) {
      s.failures++;
      deps.log.error({ job: name, err }, 'scheduled job failed');
      return false;
    }
  };

  const runIfDue = async (job: CatchUpJob, file: string) => {
    state ??= readState(file);
    await runCatchUp({ job, file, state: await state, now: now(), log: deps.log, execute });
  };

  // One tick at a time, in order; a tick that failed (state file not writable) is logged, and the
  // next tick tries again.
  const tick = () => {
    const file = deps.stateFile;
    ticking = ticking.then(async () => {
      if (!file) return;
      for (const job of catchUps)
        await runIfDue(job, file).catch((err: unknown) =>
          deps.log.error({ job: job.name, err }, 'catch-up check failed'),
        );
    });
    return ticking;
  };
  let timer: NodeJS.Timeout | undefined;

  return {
    stats,
    tick,
    add(name, cron, run, opts = {}) {
      if (!validate(cron))
        throw new GatewayError('LL_CONFIG_INVALID', `job ${name}: "${cron}" is not a cron expression`);
      stats.set(name, { runs: 0, failures: 0 });
      const catchUp = opts.catchUp === true && deps.stateFile !== undefined;
      // A catch-up job's own firing is one more tick: it runs what is due, and records it.
      const onTime = catchUp ? () => tick() : (ctx: { date: Date }) => execute(name, ctx.date, run);
      const task = schedule(cron, onTime, {
        name,
        noOverlap: true,
        ...(deps.timeZone ? { timezone: deps.timeZone } : {}),
      });
      tasks.push(task);
      if (!catchUp) return;
      catchUps.push({ name, run, matcher: task, seconds: parse(cron).second, scannedUpTo: 0, retryAt: 0 });
      if (!timer && deps.tickMs !== 0) {
        timer = setInterval(() => void tick(), deps.tickMs ?? 30_000);
        timer.unref();
      }
      void tick();
    },
    async stop() {
      if (timer) clearInterval(timer);
      for (const t of tasks) await t.stop();
      await ticking.catch(() => undefined);
    },
  };
}
