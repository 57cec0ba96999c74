// The checkpoint: `checkpoint.json`, the position up to which the database has everything, so a
// restart replays only what follows it. It is a hint for a shorter replay, never the only copy of
// anything: a checkpoint that is missing, torn or not written replays more (written twice, never
// lost). It must never name a position past the last confirm. Written through the spool's file
// seam: the new file is fsynced before the rename and the folder after it, so a power cut never
// leaves an empty checkpoint.json or the old one beside segments already deleted.
import { readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Position } from '../queue.js';
import type { OpenFile } from './files.js';

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

async function writeSynced(file: string, text: string, openFile: OpenFile): Promise<void> {
  const tmp = `${file}.tmp`;
  const data = Buffer.from(text);
  const handle = await openFile(tmp, 'w', 0o600);
  try {
    let written = 0;
    while (written < data.length)
      written += (await handle.write(data, written, data.length - written)).bytesWritten;
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  const dir = await openFile(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export function createCheckpointer(file: string, openFile: OpenFile): Checkpointer {
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
      writing = writeSynced(file, JSON.stringify(position()), openFile).finally(() => {
        writing = undefined;
      });
      await writing;
    },
  };
}
