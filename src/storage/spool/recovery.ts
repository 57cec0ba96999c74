// Start-up recovery: reads every segment once, cuts a torn or corrupt tail (kept aside under
// `corrupt/`, never replayed as garbage) and counts what follows the checkpoint as unconfirmed. It
// must never drop a whole record that precedes the first damaged byte of its segment, and never
// skip a record after the checkpoint.
import { mkdir, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { Position } from '../queue.js';
import { readCheckpoint } from './checkpoint.js';
import { SEGMENT_NAME, type Segment, segmentId } from './files.js';
import { decodeRecords, HEADER, isAfter } from './record.js';

export interface Recovered {
  /** Oldest first, each cut to its last whole record. */
  segments: Segment[];
  diskBytes: number;
  /** Records after the checkpoint (all of them when there is none), and their bytes with headers. */
  records: number;
  unconfirmedBytes: number;
  firstUnreadAt: number | undefined;
  /** The checkpoint as read, even when its segment is gone (segment ids must stay above it). */
  checkpoint: Position | undefined;
  /** Where reading resumes when the checkpoint's segment still exists. */
  resume: Position | undefined;
  cutBytes: number;
}

/** Reads one segment at start-up; a torn write at its end (crash mid-append) or corruption is cut and kept aside. */
async function scanSegment(dir: string, name: string, log: Logger) {
  const path = join(dir, name);
  const buf = await readFile(path);
  const decoded = decodeRecords(buf, segmentId(name));
  const cutBytes = buf.length - decoded.end;
  if (cutBytes > 0) {
    await mkdir(join(dir, 'corrupt'), { recursive: true });
    await writeFile(join(dir, 'corrupt', `${name}.${Date.now()}`), buf.subarray(decoded.end));
    await truncate(path, decoded.end);
    log.warn(
      { segment: name, cutBytes, corrupt: decoded.corrupt },
      decoded.corrupt
        ? 'spool segment has a corrupt record: cut from there'
        : 'spool segment ends in a torn record: cut',
    );
  }
  return { segment: { id: segmentId(name), path, size: decoded.end, cutBytes }, decoded };
}

export async function recoverSpool(dir: string, checkpointFile: string, log: Logger): Promise<Recovered> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const names = (await readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
  const checkpoint = await readCheckpoint(checkpointFile);
  // Resume after the checkpoint when its segment still exists; else replay from the first
  // segment and count every record in it as unconfirmed (some are written twice, none is lost).
  const resume =
    checkpoint && names.some((n) => segmentId(n) === checkpoint.segment) ? checkpoint : undefined;
  const out: Recovered = {
    segments: [],
    diskBytes: 0,
    records: 0,
    unconfirmedBytes: 0,
    firstUnreadAt: undefined,
    checkpoint,
    resume,
    cutBytes: 0,
  };
  for (const name of names) {
    const { segment, decoded } = await scanSegment(dir, name, log);
    out.cutBytes += segment.cutBytes;
    out.segments.push({ id: segment.id, path: segment.path, size: segment.size });
    out.diskBytes += segment.size;
    for (const r of decoded.records) {
      if (resume && !isAfter(r.position, resume)) continue;
      out.unconfirmedBytes += r.payload.length + HEADER;
      if (out.records === 0) out.firstUnreadAt = r.appendedAt;
      out.records++;
    }
  }
  return out;
}
