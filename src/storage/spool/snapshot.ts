// A copy of a live spool for a backup, taken beside the gateway that appends to and deletes from it
// (a reader: it takes no lock and never writes the spool). What a restore of the copy must never
// do is miss a record that was acknowledged before the copy began; replaying one the database
// already has is harmless (same series and time overwrite). So the checkpoint is copied FIRST and
// the segments after it: every segment deleted in between held only confirmed records, and a
// checkpoint older than the segments only means a longer replay. Each segment is cut to its last
// whole record, so an append caught half-way is left out rather than cut at the restored start.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SEGMENT_NAME, segmentId } from './files.js';
import { decodeRecords } from './record.js';

export const CHECKPOINT_NAME = 'checkpoint.json';

/** One file of the snapshot: its name in the spool folder, its bytes and its mode. */
export interface SnapshotFile {
  readonly name: string;
  readonly data: Buffer;
}

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Reads a file, or undefined when it is gone (a confirmed segment deleted meanwhile). */
async function readIfThere(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (missing(err)) return undefined;
    throw err;
  }
}

/**
 * Hands each file of the spool under `dir` to `write`, checkpoint first, then the segments oldest
 * first (each cut to whole records). A spool folder that does not exist is an empty spool.
 */
export async function snapshotSpool(
  dir: string,
  write: (file: SnapshotFile) => Promise<void>,
): Promise<{ segments: number; records: number }> {
  const checkpoint = await readIfThere(join(dir, CHECKPOINT_NAME));
  if (checkpoint) await write({ name: CHECKPOINT_NAME, data: checkpoint });
  const names = await readdir(dir).catch((err: unknown) => {
    if (missing(err)) return [] as string[];
    throw err;
  });
  let segments = 0;
  let records = 0;
  for (const name of names.filter((n) => SEGMENT_NAME.test(n)).sort()) {
    const data = await readIfThere(join(dir, name));
    if (!data) continue;
    const decoded = decodeRecords(data, segmentId(name));
    await write({ name, data: data.subarray(0, decoded.end) });
    segments++;
    records += decoded.records.length;
  }
  return { segments, records };
}
