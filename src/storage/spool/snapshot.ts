// A copy of a live spool for a backup, taken beside the gateway that appends to and deletes from it
// (a reader: it takes no lock and never writes the spool). What a restore of the copy must never
// do is miss a record that was acknowledged before the copy began; replaying one the database
// already has is harmless (same series and time overwrite). So the checkpoint is copied FIRST and
// the segments after it: every segment deleted in between held only confirmed records, and a
// checkpoint older than the segments only means a longer replay. Each segment is cut to its last
// whole record, so an append caught half-way is left out rather than cut at the restored start.
import { constants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from '../../errors.js';
import { SEGMENT_NAME, segmentId } from './files.js';
import { decodeRecords } from './record.js';

export const CHECKPOINT_NAME = 'checkpoint.json';

/** One file of the snapshot: its name in the spool folder, its bytes and its mode. */
export interface SnapshotFile {
  readonly name: string;
  readonly data: Buffer;
}

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Reads a file the gateway wrote into its data folder, with its permission bits, or undefined when
 * it is gone (a confirmed segment deleted meanwhile). The gateway only ever writes regular files
 * there: a symbolic link or a FIFO in their place was put there by someone else, and a backup (run
 * as root, say) must neither copy what a link points to (a key of the machine, restored later where
 * the gateway's user can read it) nor wait on a FIFO. So it is never followed, and it fails the backup.
 */
export async function readDataFile(path: string): Promise<{ data: Buffer; mode: number } | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    (err: NodeJS.ErrnoException) => {
      if (missing(err)) return undefined;
      if (err.code !== 'ELOOP') throw err;
      throw new GatewayError(
        'LL_BACKUP_FAILED',
        `${path} is a symbolic link, which the gateway never writes into its data folder: find out who put it there, remove it and take the backup again`,
      );
    },
  );
  if (!handle) return undefined;
  try {
    const s = await handle.stat();
    if (!s.isFile())
      throw new GatewayError(
        'LL_BACKUP_FAILED',
        `${path} is not a regular file, which the gateway never writes into its data folder: find out who put it there, remove it and take the backup again`,
      );
    return { data: await handle.readFile(), mode: s.mode & 0o777 };
  } finally {
    await handle.close();
  }
}

const readIfThere = async (path: string) => (await readDataFile(path))?.data;

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
