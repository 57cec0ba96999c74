// The spool: an append-only write-ahead log of accepted readings under `{dataDir}/spool`. A record
// is [u32 length][u32 crc32][f64 appendedAt][payload]; appends are group-committed (one write to a
// file opened with O_DSYNC for everything that arrived meanwhile). At start-up a torn or corrupt tail is cut
// (and kept aside in `corrupt/`), never replayed as garbage. The spool never deletes a segment
// before everything in it is confirmed, and when it is full, appends wait (back-pressure) instead
// of dropping anything.

import { constants } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../log.js';
import type { Position, QueuedRecord, QueueStats, RecordQueue } from './queue.js';

const HEADER = 16;
const MAX_RECORD = 64 * 1024 * 1024;
const SEGMENT_NAME = /^(\d{20})\.seg$/;

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes?: number;
  /** Most bytes of appends that may wait for space before new appends fail (memory bound). */
  maxWaitingBytes?: number;
  log: Logger;
}

export interface Spool extends RecordQueue {
  /** Opens the folder, cuts torn tails and resumes after the last checkpoint. */
  start(): Promise<{ records: number; bytes: number; cutBytes: number }>;
  stop(): Promise<void>;
}

export class SpoolFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

interface Segment {
  id: number;
  path: string;
  size: number;
}

interface Pending {
  buf: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

const segName = (id: number) => `${String(id).padStart(20, '0')}.seg`;

export function encodeRecord(payload: Buffer, appendedAt: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeDoubleLE(appendedAt, 8);
  payload.copy(buf, HEADER);
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4);
  return buf;
}

/** Parses records from `buf`; stops at the first incomplete or corrupt one and says where. */
export function decodeRecords(
  buf: Buffer,
  segment: number,
  baseOffset = 0,
): { records: QueuedRecord[]; end: number; corrupt: boolean } {
  const records: QueuedRecord[] = [];
  let at = 0;
  while (at + HEADER <= buf.length) {
    const length = buf.readUInt32LE(at);
    if (length > MAX_RECORD) return { records, end: at, corrupt: true };
    if (at + HEADER + length > buf.length) return { records, end: at, corrupt: false };
    const sum = buf.readUInt32LE(at + 4);
    if (crc32(buf.subarray(at + 8, at + HEADER + length)) !== sum) return { records, end: at, corrupt: true };
    records.push({
      position: { segment, offset: baseOffset + at + HEADER + length },
      appendedAt: buf.readDoubleLE(at + 8),
      payload: buf.subarray(at + HEADER, at + HEADER + length),
    });
    at += HEADER + length;
  }
  return { records, end: at, corrupt: false };
}

export function createSpool(opts: SpoolOptions): Spool {
  const { dir, maxBytes, log } = opts;
  const segmentBytes = opts.segmentBytes ?? 16 * 1024 * 1024;
  const maxWaitingBytes = opts.maxWaitingBytes ?? 64 * 1024 * 1024;
  const segments: Segment[] = [];
  let active: FileHandle | undefined;
  let pending: Pending[] = [];
  let committing: Promise<void> | undefined;
  let commitRunning = false;
  const waiting: Pending[] = [];
  let waitingBytes = 0;
  let totalBytes = 0; // on disk, all segments
  // Not yet confirmed: the limit applies to these, so confirmed records whose segment is not deleted
  // yet never block new ones.
  let unconfirmedBytes = 0;
  let full = false;
  // Read cursor, and the records read but not yet confirmed (a few batches at most).
  let cursor: Position = { segment: 0, offset: 0 };
  const inflight: { position: Position; appendedAt: number; size: number }[] = [];
  let unreadRecords = 0;
  let firstUnreadAt: number | undefined;
  let confirmedAt: Position = { segment: 0, offset: 0 };
  let lastCheckpoint = 0;
  let dataWaiters: (() => void)[] = [];
  let stopped = false;

  const checkpointFile = join(dir, 'checkpoint.json');
  const wake = () => {
    for (const w of dataWaiters.splice(0)) w();
  };
  const last = () => segments[segments.length - 1] as Segment;

  const openSegment = async (id: number) => {
    const path = join(dir, segName(id));
    // O_DSYNC: a write returns once its data is on stable storage, so a group commit is one
    // thread-pool round trip (a write) instead of two (write, then fdatasync). On a busy event loop
    // each round trip waits for the loop, so this halves the time a PUBACK waits for the disk.
    active = await open(
      path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC,
      0o600,
    );
    segments.push({ id, path, size: 0 });
    // The directory entry of a new segment must survive a crash too.
    const dirHandle = await open(dir, 'r');
    await dirHandle.sync().finally(() => dirHandle.close());
  };

  // The loop's exit and the flag's reset happen in the same tick: an append arriving after the last
  // check of `pending` always finds the flag down and starts a new commit (it is never stranded).
  const commit = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        if (last().size >= segmentBytes) {
          await active?.close();
          await openSegment(last().id + 1);
        }
        const bufs = batch.map((p) => p.buf);
        const bytes = bufs.reduce((n, b) => n + b.length, 0);
        // One buffer, one write: with O_DSYNC each write syscall is a disk flush of its own.
        const data = bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs, bytes);
        for (let done = 0; done < data.length; ) {
          const { bytesWritten } = await (active as FileHandle).write(data, done, data.length - done);
          done += bytesWritten;
        }
        last().size += bytes;
        totalBytes += bytes;
        if (unreadRecords === 0) firstUnreadAt = bufs[0]?.readDoubleLE(8);
        unreadRecords += batch.length;
      } catch (err) {
        for (const p of batch) {
          unconfirmedBytes -= p.buf.length;
          p.reject(err as Error);
        }
        continue;
      }
      for (const p of batch) p.resolve();
      wake();
    }
    commitRunning = false;
  };

  const enqueue = (p: Pending) => {
    // Reserved now, not at commit, so concurrent appends cannot overshoot the limit together.
    unconfirmedBytes += p.buf.length;
    pending.push(p);
    if (!commitRunning) {
      commitRunning = true;
      committing = commit();
    }
  };

  const setFull = (value: boolean) => {
    if (value === full) return;
    full = value;
    if (full)
      log.warn(
        { bytes: unconfirmedBytes, limit: maxBytes },
        'spool full: acknowledgements paused until InfluxDB catches up',
      );
    else log.info({ bytes: unconfirmedBytes, limit: maxBytes }, 'spool has room again: acknowledging');
  };

  const admitWaiting = () => {
    while (waiting.length > 0) {
      const next = waiting[0] as Pending;
      if (unconfirmedBytes + next.buf.length > maxBytes) break;
      waiting.shift();
      waitingBytes -= next.buf.length;
      enqueue(next);
    }
    setFull(waiting.length > 0);
  };

  // One checkpoint write at a time: two overlapping writers of the same .tmp file made the second
  // rename fail (ENOENT) when a write took longer than the 1-s spacing on a busy event loop.
  let checkpointing: Promise<void> | undefined;
  const writeCheckpoint = async (force: boolean): Promise<void> => {
    if (checkpointing) {
      if (!force) return; // the next confirm writes a newer position anyway
      await checkpointing.catch(() => undefined);
    }
    if (!force && Date.now() - lastCheckpoint < 1000) return;
    lastCheckpoint = Date.now();
    const tmp = `${checkpointFile}.tmp`;
    const body = JSON.stringify(confirmedAt);
    checkpointing = writeFile(tmp, body)
      .then(() => rename(tmp, checkpointFile))
      .finally(() => {
        checkpointing = undefined;
      });
    await checkpointing;
  };

  let readHandle: { id: number; handle: FileHandle } | undefined;

  return {
    get stats(): QueueStats {
      return {
        bytes: unconfirmedBytes,
        diskBytes: totalBytes,
        limitBytes: maxBytes,
        unconfirmedRecords: inflight.length + unreadRecords,
        oldestUnconfirmedAt: inflight[0]?.appendedAt ?? (unreadRecords > 0 ? firstUnreadAt : undefined),
        full,
      };
    },

    async start() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const names = (await readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
      let checkpoint: Position | undefined;
      try {
        checkpoint = JSON.parse(await readFile(checkpointFile, 'utf8')) as Position;
      } catch {
        checkpoint = undefined;
      }
      let cutBytes = 0;
      let records = 0;
      for (const name of names) {
        const id = Number(SEGMENT_NAME.exec(name)?.[1]);
        const path = join(dir, name);
        const buf = await readFile(path);
        const decoded = decodeRecords(buf, id);
        if (decoded.end < buf.length) {
          // A torn write at the end (crash mid-append) or corruption: keep the bytes aside, cut them.
          await mkdir(join(dir, 'corrupt'), { recursive: true });
          await writeFile(join(dir, 'corrupt', `${name}.${Date.now()}`), buf.subarray(decoded.end));
          await truncate(path, decoded.end);
          cutBytes += buf.length - decoded.end;
          log.warn(
            { segment: name, cutBytes: buf.length - decoded.end, corrupt: decoded.corrupt },
            decoded.corrupt
              ? 'spool segment has a corrupt record: cut from there'
              : 'spool segment ends in a torn record: cut',
          );
        }
        segments.push({ id, path, size: decoded.end });
        totalBytes += decoded.end;
        for (const r of decoded.records) {
          const done =
            checkpoint &&
            (id < checkpoint.segment ||
              (id === checkpoint.segment && r.position.offset <= checkpoint.offset));
          if (done) continue;
          unconfirmedBytes += r.payload.length + HEADER;
          if (records === 0) firstUnreadAt = r.appendedAt;
          records++;
        }
      }
      unreadRecords = records;
      // Resume after the checkpoint when its segment still exists; else from the first segment.
      const first = segments[0];
      if (checkpoint && segments.some((s) => s.id === checkpoint.segment)) {
        cursor = checkpoint;
        confirmedAt = checkpoint;
      } else if (first) {
        cursor = { segment: first.id, offset: 0 };
      }
      // Appends always go to a fresh segment, so a segment being replayed is never also written.
      await openSegment((segments.length > 0 ? last().id : 0) + 1);
      if (!first) cursor = { segment: last().id, offset: 0 };
      if (records > 0)
        log.info(
          { records, bytes: totalBytes },
          'spool holds unwritten readings from the last run; replaying',
        );
      return { records, bytes: totalBytes, cutBytes };
    },

    append(payloads) {
      if (stopped) return Promise.reject(new SpoolFullError('spool is stopped'));
      const now = Date.now();
      const one = (payload: Buffer) =>
        new Promise<void>((resolve, reject) => {
          const p: Pending = { buf: encodeRecord(payload, now), resolve, reject };
          if (waiting.length === 0 && unconfirmedBytes + p.buf.length <= maxBytes) return enqueue(p);
          if (waitingBytes + p.buf.length > maxWaitingBytes) {
            return reject(
              new SpoolFullError(
                `spool is full (${unconfirmedBytes} of ${maxBytes} bytes) and ${waitingBytes} bytes are waiting`,
              ),
            );
          }
          waiting.push(p);
          waitingBytes += p.buf.length;
          setFull(true);
        });
      // One record per message is the common case: no Promise.all for it.
      if (payloads.length === 1) return one(payloads[0] as Buffer);
      return Promise.all(payloads.map(one)).then(() => undefined);
    },

    async read(maxBytes) {
      const out: QueuedRecord[] = [];
      let budget = maxBytes;
      while (budget > 0) {
        const seg =
          segments.find((s) => s.id === cursor.segment) ?? segments.find((s) => s.id > cursor.segment);
        if (!seg) break;
        if (seg.id !== cursor.segment) cursor = { segment: seg.id, offset: 0 };
        if (cursor.offset >= seg.size) {
          const next = segments.find((s) => s.id > seg.id);
          if (!next) break;
          cursor = { segment: next.id, offset: 0 };
          continue;
        }
        if (readHandle?.id !== seg.id) {
          await readHandle?.handle.close();
          readHandle = { id: seg.id, handle: await open(seg.path, 'r') };
        }
        const want = Math.min(seg.size - cursor.offset, Math.max(budget, HEADER));
        let buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await readHandle.handle.read(buf, 0, want, cursor.offset);
        buf = buf.subarray(0, bytesRead);
        let decoded = decodeRecords(buf, seg.id, cursor.offset);
        if (decoded.records.length === 0 && buf.length >= HEADER) {
          // One record larger than the budget: read exactly that record.
          const whole = Buffer.allocUnsafe(HEADER + buf.readUInt32LE(0));
          await readHandle.handle.read(whole, 0, whole.length, cursor.offset);
          decoded = decodeRecords(whole, seg.id, cursor.offset);
        }
        if (decoded.records.length === 0) break;
        for (const r of decoded.records) {
          out.push(r);
          inflight.push({ position: r.position, appendedAt: r.appendedAt, size: r.payload.length + HEADER });
        }
        unreadRecords -= decoded.records.length;
        cursor = (decoded.records[decoded.records.length - 1] as QueuedRecord).position;
        budget -= decoded.end;
        if (unreadRecords === 0) firstUnreadAt = undefined;
      }
      return out;
    },

    async confirm(position) {
      while (inflight.length > 0) {
        const head = inflight[0] as { position: Position };
        if (head.position.segment > position.segment) break;
        if (head.position.segment === position.segment && head.position.offset > position.offset) break;
        unconfirmedBytes -= (inflight.shift() as { size: number }).size;
      }
      confirmedAt = position;
      // Delete whole segments that are confirmed, except the one appends go to.
      while (segments.length > 1) {
        const seg = segments[0] as Segment;
        const done =
          seg.id < position.segment || (seg.id === position.segment && position.offset >= seg.size);
        if (!done) break;
        // Taken out before any await: two confirms running at once (drain workers) must never
        // both remove the same segment, or the array would lose the segment appends go to.
        segments.shift();
        totalBytes -= seg.size;
        if (readHandle?.id === seg.id) {
          const handle = readHandle.handle;
          readHandle = undefined;
          await handle.close();
        }
        await rm(seg.path, { force: true });
      }
      await writeCheckpoint(false);
      admitWaiting();
    },

    waitForData(timeoutMs) {
      if (unreadRecords > 0 || stopped) return Promise.resolve();
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
      for (const w of waiting.splice(0)) w.reject(new SpoolFullError('gateway stopping'));
      waitingBytes = 0;
      await committing;
      wake();
      dataWaiters = [];
      await writeCheckpoint(true).catch(() => undefined);
      await readHandle?.handle.close();
      readHandle = undefined;
      await active?.close();
      active = undefined;
      // An empty last segment is noise on the next start.
      const tail = segments[segments.length - 1];
      if (tail && tail.size === 0 && segments.length > 1) await rm(tail.path, { force: true });
      else if (tail && tail.size === 0 && (await stat(tail.path).catch(() => undefined))?.size === 0) {
        await rm(tail.path, { force: true });
      }
    },
  };
}
