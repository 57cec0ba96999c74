// The checkpoint: `checkpoint.json`, the position up to which the database has everything, so a
// restart replays only what follows it. It is a hint for a shorter replay, never the only copy of
// anything: a checkpoint that is missing, torn or not written replays more (written twice, never
// lost). It must never name a position past the last confirm.
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Position } from '../queue.js';

/** Most often a checkpoint is written while confirms stream in; a stop writes one regardless. */
const SPACING_MS = 1000;

export async function readCheckpoint(file: string): Promise<Position | undefined> {
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as Partial<Position> | null;
    // A checkpoint torn by a crash only means replaying more: written twice, never lost.
    return typeof c?.segment === 'number' && typeof c.offset === 'number'
      ? { segment: c.segment, offset: c.offset }
      : undefined;
  } catch {
    return undefined;
  }
}

export interface Checkpointer {
  /** Writes `position` (tmp + rename); unless `force`, at most once a second and never twice at once. */
  write(position: () => Position, force: boolean): Promise<void>;
}

export function createCheckpointer(file: string): Checkpointer {
  let last = 0;
  // One checkpoint write at a time: two overlapping writers of the same .tmp file made the second
  // rename fail (ENOENT) when a write took longer than the 1-s spacing on a busy event loop.
  let writing: Promise<void> | undefined;
  return {
    async write(position, force) {
      if (writing) {
        if (!force) return; // the next confirm writes a newer position anyway
        await writing.catch(() => undefined);
      }
      if (!force && Date.now() - last < SPACING_MS) return;
      last = Date.now();
      const tmp = `${file}.tmp`;
      writing = writeFile(tmp, JSON.stringify(position()))
        .then(() => rename(tmp, file))
        .finally(() => {
          writing = undefined;
        });
      await writing;
    },
  };
}
