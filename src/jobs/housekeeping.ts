// Housekeeping: rotates the rejects log and the event log, and deletes rotated logs and reports
// older than the retention. It never touches the spool (the drain owns it) or the current logs'
// contents.
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ROTATED_LOG_NAME, resolveDataPaths } from '../config/data-paths.js';
import type { Logger } from '../log.js';
import type { RejectsLog } from '../storage/rejects-log.js';

const REPORT = /^\d{4}-\d\d-\d\d(-[a-z0-9-]+)?\.(md|json|svg)$/;

export async function runHousekeeping(deps: {
  dataDir: string;
  rejects: RejectsLog;
  retentionMs: number;
  log: Logger;
  now?: number;
}): Promise<{ rotated: string[]; deleted: string[] }> {
  const now = deps.now ?? Date.now();
  const rotated: string[] = [];
  const r = await deps.rejects.rotate();
  if (r) rotated.push(r);
  const paths = resolveDataPaths(deps.dataDir);
  const events = paths.eventsLog;
  const eventsSize = (await stat(events).catch(() => undefined))?.size ?? 0;
  if (eventsSize > 0) {
    const target = paths.rotatedLog('events', new Date(now));
    await rename(events, target);
    rotated.push(target);
  }
  const deleted: string[] = [];
  const sweep = async (dir: string, pattern: RegExp) => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!pattern.test(name)) continue;
      const path = join(dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info && now - info.mtimeMs > deps.retentionMs) {
        await rm(path, { force: true });
        deleted.push(path);
      }
    }
  };
  await sweep(deps.dataDir, ROTATED_LOG_NAME);
  await sweep(paths.reports, REPORT);
  deps.log.info({ rotated: rotated.length, deleted: deleted.length }, 'housekeeping done');
  return { rotated, deleted };
}
