// Housekeeping: rotates the rejects log and the event log, and deletes rotated logs and reports
// older than the retention. It never touches the spool (the drain owns it) or the current logs'
// contents, and deletes only files it wrote itself: exact names from config/data-paths.ts, aged by
// the date in the name (an operator's reports/2020-01-01-notes.md survives). One failed step does
// not stop the others; the run then fails as a whole, naming each step, so the job metrics show it.
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createdAtOfName, REPORT_NAME, ROTATED_LOG_NAME, resolveDataPaths } from '../config/data-paths.js';
import type { Logger } from '../log.js';
import type { RejectsLog } from '../storage/rejects-log.js';

export interface HousekeepingResult {
  rotated: string[];
  deleted: string[];
}

async function rotateEvents(dataDir: string, now: number): Promise<string | undefined> {
  const paths = resolveDataPaths(dataDir);
  const size = (await stat(paths.eventsLog).catch(() => undefined))?.size ?? 0;
  if (size === 0) return undefined;
  const target = paths.rotatedLog('events', new Date(now));
  // The liveness job opens the events log for each line, so a rename never leaves it closed.
  await rename(paths.eventsLog, target);
  return target;
}

async function sweep(dir: string, pattern: RegExp, before: number, deleted: string[]): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const at = pattern.test(name) ? createdAtOfName(name) : undefined;
    if (at === undefined || at > before) continue;
    const path = join(dir, name);
    await rm(path, { force: true });
    deleted.push(path);
  }
}

export async function runHousekeeping(deps: {
  dataDir: string;
  rejects: RejectsLog;
  retentionMs: number;
  log: Logger;
  now?: number;
}): Promise<HousekeepingResult> {
  const now = deps.now ?? Date.now();
  const result: HousekeepingResult = { rotated: [], deleted: [] };
  const failed: string[] = [];
  const step = async (name: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      failed.push(`${name}: ${(err as Error).message}`);
    }
  };
  await step('rotate rejects log', async () => {
    const r = await deps.rejects.rotate();
    if (r) result.rotated.push(r);
  });
  await step('rotate events log', async () => {
    const r = await rotateEvents(deps.dataDir, now);
    if (r) result.rotated.push(r);
  });
  const before = now - deps.retentionMs;
  await step('delete old logs', () => sweep(deps.dataDir, ROTATED_LOG_NAME, before, result.deleted));
  await step('delete old reports', () =>
    sweep(resolveDataPaths(deps.dataDir).reports, REPORT_NAME, before, result.deleted),
  );
  deps.log.info({ rotated: result.rotated.length, deleted: result.deleted.length }, 'housekeeping done');
  if (failed.length > 0) throw new Error(`housekeeping incomplete: ${failed.join('; ')}`);
  return result;
}
