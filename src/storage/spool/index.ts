// The spool: an append-only write-ahead log of accepted readings under `{dataDir}/spool`, behind the
// RecordQueue the drain reads from. This file wires its parts and owns what is deleted when:
//   record.ts         the record format and its CRC (an existing spool folder must stay readable)
//   files.ts          segment names and the file seam (SpoolFile) that tests inject disk faults through
//   recovery.ts       the start-up scan: cut torn or corrupt tails, count what follows the checkpoint
//   checkpoint.ts     where a restart resumes
//   appender.ts       the active segment: O_DSYNC writes, rotation, cut-back after a failed write
//   group-commit.ts   one write for every append that arrived meanwhile
//   back-pressure.ts  the size limit: appends wait for room instead of being dropped
//   reader.ts         the cursor and the records handed out but not yet confirmed
//
// The invariants, stated once (the part that keeps each in brackets; `assert` where it is cheap):
// 1. Acknowledged means durable: append() resolves only once its record is on stable storage in a
//    segment whose directory entry is synced, and counted in that segment's size [appender,
//    group-commit]. A rejected append was never acknowledged: the device keeps and resends it.
// 2. A failed write leaves nothing uncounted in front of a later record: it is cut back, or appends
//    are refused (`stats.appendError`, readiness false) until a cut succeeds [appender].
// 3. A confirm of P (confirms come in position order) means every record up to and including P is
//    in the database or the rejects log. Only then do their bytes leave the limit [reader], may the
//    checkpoint name P [checkpoint] and may their segments go [confirm below].
// 4. A segment is deleted only when every record in it is confirmed, and never the one appends go
//    to. A failed delete or checkpoint write only means a longer replay (written twice, never lost).
// 5. Recovery never replays garbage (a CRC per record; from the first bad byte a segment is cut and
//    the bytes kept in `corrupt/`) and never skips a record after the checkpoint [recovery].
// 6. Segment ids only grow, even after every segment was deleted, so a checkpoint never points into
//    a newer segment of the same name; appends after a start go to a fresh segment, so a segment
//    being replayed is never also written [start below].
// 7. When full, appends wait in order; only appends past the waiting bound (memory) are refused
//    [back-pressure]. A failed read hands out what it read before the failure [reader].
import { ok as assert } from 'node:assert/strict';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import type { Position, QueueStats, RecordQueue } from '../queue.js';
import { type Appender, createAppender } from './appender.js';
import { type BackPressure, createBackPressure, SpoolFullError } from './back-pressure.js';
import { createCheckpointer } from './checkpoint.js';
import type { OpenFile, Segment } from './files.js';
import { createGroupCommit } from './group-commit.js';
import { createLedger, type Ledger, lastSegment } from './ledger.js';
import { createReader, type Reader } from './reader.js';
import { encodeRecord } from './record.js';
import { recoverSpool } from './recovery.js';

export { SpoolFullError } from './back-pressure.js';
export type { SpoolFile } from './files.js';
export { decodeRecords, encodeRecord } from './record.js';

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes?: number;
  /** Most bytes of appends that may wait for space before new appends fail (memory bound). */
  maxWaitingBytes?: number;
  log: Logger;
  /** Opens segment files and the spool folder (for its fsync); tests inject disk faults here. */
  openFile?: OpenFile;
}

export interface Spool extends RecordQueue {
  /** Opens the folder, cuts torn tails and resumes after the last checkpoint. */
  start(): Promise<{ records: number; bytes: number; cutBytes: number }>;
  stop(): Promise<void>;
}

interface Parts {
  dir: string;
  log: Logger;
  ledger: Ledger;
  appender: Appender;
  reader: Reader;
}

/** Opens the folder, recovers it and opens the segment appends go to. */
async function startSpool(p: Parts, checkpointFile: string) {
  const { ledger, reader } = p;
  const found = await recoverSpool(p.dir, checkpointFile, p.log);
  ledger.segments.push(...found.segments);
  ledger.diskBytes += found.diskBytes;
  ledger.unconfirmedBytes += found.unconfirmedBytes;
  ledger.unreadRecords = found.records;
  ledger.firstUnreadAt = found.firstUnreadAt;
  const first = ledger.segments[0];
  if (found.resume) reader.cursor = found.resume;
  else if (first) reader.cursor = { segment: first.id, offset: 0 };
  // Invariant 6: past every segment on disk and past the checkpoint's segment too.
  const id = Math.max(first ? lastSegment(ledger).id : 0, found.checkpoint?.segment ?? 0) + 1;
  await p.appender.openSegment(id);
  if (!first) reader.cursor = { segment: id, offset: 0 };
  if (found.records > 0)
    p.log.info(
      { records: found.records, bytes: ledger.diskBytes },
      'spool holds unconfirmed readings from the last run; replaying',
    );
  return { records: found.records, bytes: ledger.diskBytes, cutBytes: found.cutBytes, resume: found.resume };
}

/** Invariant 4: deletes the leading segments that `position` confirms whole, never the last one. */
async function deleteConfirmed(p: Parts, position: Position) {
  const { segments } = p.ledger;
  while (segments.length > 1) {
    const seg = segments[0] as Segment;
    const done = seg.id < position.segment || (seg.id === position.segment && position.offset >= seg.size);
    if (!done) break;
    // Taken out before any await: two confirms running at once (drain workers) must never
    // both remove the same segment, or the array would lose the segment appends go to.
    segments.shift();
    assert(seg !== lastSegment(p.ledger), 'the segment appends go to is never deleted');
    p.ledger.diskBytes -= seg.size;
    await p.reader.release(seg.id);
    // A segment left behind is only replayed after a restart (written twice, never lost), and
    // the next confirm or start-up tries again; a failed delete must not stop the confirm.
    await rm(seg.path, { force: true }).catch((err: unknown) =>
      p.log.warn({ segment: seg.path, err }, 'could not delete a written spool segment'),
    );
  }
}

/** An empty last segment is noise on the next start. */
async function removeEmptyTail(segments: Segment[]) {
  const tail = segments[segments.length - 1];
  if (tail && tail.size === 0 && segments.length > 1) await rm(tail.path, { force: true });
  else if (tail && tail.size === 0 && (await stat(tail.path).catch(() => undefined))?.size === 0) {
    await rm(tail.path, { force: true });
  }
}

function statsOf(p: Parts, backPressure: BackPressure, limitBytes: number): QueueStats {
  const { ledger, reader, appender } = p;
  return {
    bytes: ledger.unconfirmedBytes,
    diskBytes: ledger.diskBytes,
    limitBytes,
    unconfirmedRecords: reader.handedOutRecords + ledger.unreadRecords,
    oldestUnconfirmedAt:
      reader.oldestHandedOutAt ?? (ledger.unreadRecords > 0 ? ledger.firstUnreadAt : undefined),
    full: backPressure.full,
    appendError: appender.error?.message,
    writeErrors: appender.writeErrors,
  };
}

export function createSpool(opts: SpoolOptions): Spool {
  const { dir, maxBytes, log } = opts;
  const openFile = opts.openFile ?? open;
  const ledger = createLedger();
  const segmentBytes = opts.segmentBytes ?? 16 * 1024 * 1024;
  const appender = createAppender({ dir, segments: ledger.segments, segmentBytes, openFile, log });
  const p: Parts = { dir, log, ledger, appender, reader: createReader(ledger, openFile) };
  let dataWaiters: (() => void)[] = [];
  const wake = () => {
    for (const w of dataWaiters.splice(0)) w();
  };
  const commit = createGroupCommit(appender, ledger, wake);
  const limits = { maxBytes, maxWaitingBytes: opts.maxWaitingBytes ?? 64 * 1024 * 1024 };
  const backPressure = createBackPressure(ledger, commit, limits, log);
  const checkpointFile = join(dir, 'checkpoint.json');
  const checkpointer = createCheckpointer(checkpointFile, openFile);
  let confirmedAt: Position = { segment: 0, offset: 0 };
  let stopped = false;

  return {
    get stats() {
      return statsOf(p, backPressure, maxBytes);
    },
    async start() {
      const { resume, ...started } = await startSpool(p, checkpointFile);
      if (resume) confirmedAt = resume;
      return started;
    },
    append(payloads) {
      if (stopped) return Promise.reject(new SpoolFullError('spool is stopped'));
      const now = Date.now();
      const one = (payload: Buffer) =>
        new Promise<void>((resolve, reject) =>
          backPressure.admit({ buf: encodeRecord(payload, now), resolve, reject }),
        );
      // One record per message is the common case: no Promise.all for it.
      if (payloads.length === 1) return one(payloads[0] as Buffer);
      return Promise.all(payloads.map(one)).then(() => undefined);
    },
    read: (maxBytes) => p.reader.read(maxBytes),
    async confirm(position) {
      p.reader.confirmUpTo(position);
      confirmedAt = position;
      await deleteConfirmed(p, position);
      // Before the checkpoint: a checkpoint that cannot be written (full disk) must not keep
      // appends waiting for room that is already free.
      backPressure.admitWaiting();
      await checkpointer.write(() => confirmedAt, false);
    },
    waitForData(timeoutMs) {
      if (ledger.unreadRecords > 0 || stopped) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        dataWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    async stop() {
      stopped = true;
      backPressure.rejectWaiting('gateway stopping');
      await commit.settled();
      wake();
      dataWaiters = [];
      await checkpointer.write(() => confirmedAt, true).catch(() => undefined);
      await p.reader.close();
      await appender.close();
      await removeEmptyTail(ledger.segments);
    },
  };
}
