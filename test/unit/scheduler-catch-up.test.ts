// Daily jobs that were missed (the gateway was down at 00:30, or node-cron fired too late and
// dropped the run) run once at the next start or tick, on an injected clock, in the lab's time zone.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { addDays, clockOf, dayBounds, dayOf } from '../../src/jobs/lab-day.js';
import { createScheduler, type JobRun } from '../../src/jobs/scheduler.js';
import { createLogger } from '../../src/log.js';

const TZ = 'Europe/Copenhagen';

async function stateFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'll-sched-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'jobs.json');
}

/** A scheduler on the clock `clock.now`, as a gateway (re)started at that time has it. */
function start(file: string, clock: { now: number }, run: JobRun) {
  const scheduler = createScheduler({
    log: createLogger({ level: 'silent' }),
    timeZone: TZ,
    stateFile: file,
    now: () => clock.now,
    tickMs: 0,
  });
  onTestFinished(() => scheduler.stop());
  scheduler.add('quality-report', '30 0 * * *', run, { catchUp: true });
  return scheduler;
}

describe('catching up missed daily runs', () => {
  it('runs a report missed while the gateway was down once, for the scheduled time, and never twice', async () => {
    const file = await stateFile();
    const runs: string[] = [];
    const run: JobRun = async (at) => {
      runs.push(at.toISOString());
    };
    // First start ever, at noon: nothing is owed from before the gateway existed.
    const clock = { now: Date.parse('2026-11-27T11:00:00Z') };
    await start(file, clock, run).tick();
    expect(runs).toEqual([]);
    // Down from the evening to 09:00 the next morning (Copenhagen, UTC+1): 00:30 was missed.
    clock.now = Date.parse('2026-11-28T08:00:00Z');
    const restarted = start(file, clock, run);
    await restarted.tick();
    expect(runs).toEqual(['2026-11-27T23:30:00.000Z']);
    await restarted.tick();
    await start(file, clock, run).tick();
    expect(runs).toHaveLength(1);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      'quality-report': { lastRunAt: '2026-11-27T23:30:00.000Z' },
    });
    // A tick a few minutes after 00:30 the next night (the cron run fired late and was dropped).
    clock.now = Date.parse('2026-11-28T23:34:00Z');
    await restarted.tick();
    expect(runs).toEqual(['2026-11-27T23:30:00.000Z', '2026-11-28T23:30:00.000Z']);
  });

  it('retries a failed catch-up run after a pause, not on every tick, and records only a success', async () => {
    const file = await stateFile();
    const clock = { now: Date.parse('2026-11-27T11:00:00Z') };
    let fail = true;
    let attempts = 0;
    const scheduler = start(file, clock, async () => {
      attempts++;
      if (fail) throw new Error('InfluxDB down');
    });
    await scheduler.tick();
    clock.now = Date.parse('2026-11-28T08:00:00Z');
    await scheduler.tick();
    await scheduler.tick();
    expect(attempts).toBe(1);
    expect(scheduler.stats.get('quality-report')).toMatchObject({ runs: 1, failures: 1 });
    fail = false;
    clock.now += 11 * 60_000;
    await scheduler.tick();
    expect(attempts).toBe(2);
    expect(JSON.parse(await readFile(file, 'utf8'))['quality-report'].lastRunAt).toBe(
      '2026-11-27T23:30:00.000Z',
    );
  });
});

describe('a job state file that names no past run', () => {
  it.each([
    [
      'a run in the future (the clock was a year ahead, then set right)',
      '{"quality-report":{"lastRunAt":"2027-11-28T23:30:00.000Z"}}',
    ],
    ['an entry without a time', '{"quality-report":{}}'],
    ['an entry whose time is not a date', '{"quality-report":{"lastRunAt":"yesterday"}}'],
    ['null', 'null'],
  ])('%s: the job starts afresh and runs the next night', async (_, text) => {
    const file = await stateFile();
    await writeFile(file, text);
    const runs: string[] = [];
    const clock = { now: Date.parse('2026-11-28T08:00:00Z') };
    const scheduler = start(file, clock, async (at) => {
      runs.push(at.toISOString());
    });
    await scheduler.tick();
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      'quality-report': { lastRunAt: '2026-11-28T08:00:00.000Z' },
    });
    clock.now = Date.parse('2026-11-28T23:34:00Z');
    await scheduler.tick();
    expect(runs).toEqual(['2026-11-28T23:30:00.000Z']);
  });
});

describe("the lab's day", () => {
  it('runs midnight to midnight in the lab time zone, 23 or 25 hours across a clock change', () => {
    expect(dayBounds('2026-11-27', TZ)).toEqual({
      from: Date.parse('2026-11-26T23:00:00Z'),
      to: Date.parse('2026-11-27T23:00:00Z'),
    });
    const autumn = dayBounds('2026-10-25', TZ);
    expect((autumn.to - autumn.from) / 3_600_000).toBe(25);
    const spring = dayBounds('2026-03-29', TZ);
    expect((spring.to - spring.from) / 3_600_000).toBe(23);
    // The 00:30 run in Copenhagen is 23:30 UTC the evening before: its "yesterday" is the lab's.
    expect(addDays(dayOf(Date.parse('2026-11-27T23:30:00Z'), TZ), -1)).toBe('2026-11-27');
    // Gaps in the report are shown on the lab's clock.
    expect(clockOf('2026-11-27T04:30:00.000Z', TZ)).toBe('05:30');
  });
});
