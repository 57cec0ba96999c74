// The spool: an append-only write-ahead log of accepted readings under `{dataDir}/spool`. A record
// is [u32 length][u32 crc32][f64 appendedAt][payload]; appends are group-committed (one write to a
// file opened with O_DSYNC for everything that arrived meanwhile). At start-up a torn or corrupt tail is cut
// (and kept aside in `corrupt/`), never replayed as garbage. The spool never deletes a segment
// before everything in it is confirmed, and when it is full, appends wait (back-pressure) instead
// of dropping anything.
//
// A failing disk: a write that fails (even after writing part of its data, as ENOSPC does) rejects
// its appends and cuts the segment back to its last counted byte, so nothing uncounted ever sits in
// front of a later record. If that cut fails too, the spool refuses appends (`stats.appendError`,
// readiness false) and tries the cut again with each new append; a restart recovers as well (the
// start-up scan cuts a torn tail). A failed read hands out what it read before the failure.
// A failed delete of a written segment or a failed checkpoint write only means a longer replay
// after a restart (written twice, never lost). Segment ids are never reused, not even after every
// segment was deleted, so a checkpoint can never point into a newer segment of the same name.

import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { GatewayError } from '../errors.js';
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
  /** Opens segment files and the spool folder (for its fsync); tests inject disk faults here. */
  openFile?: (path: string, flags: number | string, mode?: number) => Promise<SpoolFile>;
}

/** The part of node:fs/promises FileHandle the spool uses. */
export interface SpoolFile {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  truncate(length: number): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
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
const errText = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

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

/** The end of the spool that appends go to: the active segment, its rotation and its repair. */
interface Appender {
  /** Opens a fresh segment `id` for appends; its directory entry is synced before it takes records. */
  openSegment(id: number): Promise<void>;
  /** Writes `data` at the end of the active segment and counts it, or counts nothing and throws. */
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
  /** Set while appends are refused: a failed write could not be cut back out of the segment. */
  readonly error: GatewayError | undefined;
  readonly writeErrors: number;
}

function createAppender(o: {
  dir: string;
  segments: Segment[];
  segmentBytes: number;
  openFile: NonNullable<SpoolOptions['openFile']>;
  log: Logger;
}): Appender {
  const { segments, log } = o;
  let active: SpoolFile | undefined;
  let dirSynced = true;
  let failed: GatewayError | undefined;
  let failing = false;
  let writeErrors = 0;
  const last = () => segments[segments.length - 1] as Segment;

  const syncDir = async () => {
    const dirHandle = await o.openFile(o.dir, 'r');
    await dirHandle.sync().finally(() => dirHandle.close());
    dirSynced = true;
  };

  const openSegment = async (id: number) => {
    const path = join(o.dir, segName(id));
    // O_DSYNC: a write returns once its data is on stable storage, so a group commit is one
    // thread-pool round trip (a write) instead of two (write, then fdatasync). On a busy event loop
    // each round trip waits for the loop, so this halves the time a PUBACK waits for the disk.
    active = await o.openFile(
      path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC,
      0o600,
    );
    segments.push({ id, path, size: 0 });
    // The directory entry of a new segment must survive a crash too (retried before the first write).
    dirSynced = false;
    await syncDir();
  };

  const ensureSegment = async () => {
    if (active && last().size < o.segmentBytes) {
      if (!dirSynced) await syncDir();
      return;
    }
    // Taken down first: a failed open must not leave a closed handle behind as the active one.
    const old = active;
    active = undefined;
    await old?.close().catch(() => undefined);
    await openSegment(last().id + 1);
  };

  // After a write that failed part-way (ENOSPC after a short write), its bytes sit uncounted at the
  // end of the segment; later records would land after them, past what the reader and the next
  // start-up scan can reach. Cut them; if that fails too, refuse appends until a cut succeeds.
  const cutBack = async (seg: Segment, file: SpoolFile, err: unknown): Promise<never> => {
    writeErrors++;
    try {
      await file.truncate(seg.size);
    } catch (cutErr) {
      failed = new GatewayError(
        'LL_SPOOL_CUT_FAILED',
        `spool segment ${seg.path} could not be cut back to ${seg.size} bytes after a failed write (${errText(cutErr)}): not acknowledging readings until it can; free disk space or check the disk, or restart the gateway`,
        { cause: cutErr },
      );
      log.error(
        { segment: seg.path, size: seg.size, err: errText(err), cutErr: errText(cutErr) },
        'spool write failed and the segment could not be cut back: not acknowledging readings',
      );
      throw failed;
    }
    if (!failing)
      log.warn(
        { segment: seg.path, size: seg.size, err: errText(err) },
        'spool write failed; segment cut back to its last complete record, readings not acknowledged',
      );
    failing = true;
    throw new GatewayError(
      'LL_SPOOL_WRITE_FAILED',
      `could not write to spool segment ${seg.path} (${errText(err)}): readings not acknowledged; free disk space or check the disk`,
      { cause: err },
    );
  };

  // Tried again with every append while refusing: by path, since the handle may be what is broken;
  // appends then go on in a fresh segment.
  const repair = async () => {
    const seg = last();
    const file = await o.openFile(seg.path, constants.O_WRONLY);
    await file.truncate(seg.size).finally(() => file.close());
    const old = active;
    active = undefined;
    await old?.close().catch(() => undefined);
    failed = undefined;
    log.info(
      { segment: seg.path, size: seg.size },
      'spool segment cut back after a write error: acknowledging again',
    );
  };

  return {
    openSegment,
    get error() {
      return failed;
    },
    get writeErrors() {
      return writeErrors;
    },
    async write(data) {
      if (failed) {
        const refused = failed;
        await repair().catch(() => {
          throw refused;
        });
      }
      try {
        await ensureSegment();
      } catch (err) {
        writeErrors++;
        throw new GatewayError(
          'LL_SPOOL_WRITE_FAILED',
          `could not open or sync a spool segment in ${o.dir} (${errText(err)}): readings not acknowledged; free disk space or check the disk`,
          { cause: err },
        );
      }
      const seg = last();
      const file = active as SpoolFile;
      try {
        for (let done = 0; done < data.length; ) {
          const { bytesWritten } = await file.write(data, done, data.length - done);
          done += bytesWritten;
        }
      } catch (err) {
        await cutBack(seg, file, err);
      }
      seg.size += data.length;
      if (failing) log.info({ segment: seg.path }, 'spool writes succeed again');
      failing = false;
    },
    async close() {
      const old = active;
      active = undefined;
      await old?.close();
    },
  };
}

const segmentId = (name: string) => Number(SEGMENT_NAME.exec(name)?.[1]);
const isAfter = (p: Position, q: Position) =>
  p.segment > q.segment || (p.segment === q.segment && p.offset > q.offset);

async function readCheckpoint(file: string): Promise<Position | undefined> {
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

export function createSpool(opts: SpoolOptions): Spool {
  const { dir, maxBytes, log } = opts;
  const segmentBytes = opts.segmentBytes ?? 16 * 1024 * 1024;
  const maxWaitingBytes = opts.maxWaitingBytes ?? 64 * 1024 * 1024;
  const segments: Segment[] = [];
  const openFile = opts.openFile ?? open;
  const appender = createAppender({ dir, segments, segmentBytes, openFile, log });
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

  // The loop's exit and the flag's reset happen in the same tick: an append arriving after the last
  // check of `pending` always finds the flag down and starts a new commit (it is never stranded).
  const commit = async (): Promise<void> => {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        const bufs = batch.map((p) => p.buf);
        const bytes = bufs.reduce((n, b) => n + b.length, 0);
        // One buffer, one write: with O_DSYNC each write syscall is a disk flush of its own.
        const data = bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs, bytes);
        // [DESIGN §2] a rejected append is never acknowledged: the device keeps and resends it.
        await appender.write(data);
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

  let readHandle: { id: number; handle: SpoolFile } | undefined;

  // Reads chunk by chunk into `out`, moving the cursor past each chunk as it is handed out.
  const readInto = async (out: QueuedRecord[], maxBytes: number) => {
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
        const old = readHandle;
        readHandle = undefined;
        await old?.handle.close();
        readHandle = { id: seg.id, handle: await openFile(seg.path, 'r') };
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
  };

  return {
    get stats(): QueueStats {
      return {
        bytes: unconfirmedBytes,
        diskBytes: totalBytes,
        limitBytes: maxBytes,
        unconfirmedRecords: inflight.length + unreadRecords,
        oldestUnconfirmedAt: inflight[0]?.appendedAt ?? (unreadRecords > 0 ? firstUnreadAt : undefined),
        full,
        appendError: appender.error?.message,
        writeErrors: appender.writeErrors,
      };
    },

    async start() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const names = (await readdir(dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
      const checkpoint = await readCheckpoint(checkpointFile);
      // Resume after the checkpoint when its segment still exists; else replay from the first
      // segment and count every record in it as unwritten (some are written twice, none is lost).
      const resume =
        checkpoint && names.some((n) => segmentId(n) === checkpoint.segment) ? checkpoint : undefined;
      let cutBytes = 0;
      let records = 0;
      for (const name of names) {
        const { segment, decoded } = await scanSegment(dir, name, log);
        cutBytes += segment.cutBytes;
        segments.push({ id: segment.id, path: segment.path, size: segment.size });
        totalBytes += segment.size;
        for (const r of decoded.records) {
          if (resume && !isAfter(r.position, resume)) continue;
          unconfirmedBytes += r.payload.length + HEADER;
          if (records === 0) firstUnreadAt = r.appendedAt;
          records++;
        }
      }
      unreadRecords = records;
      const first = segments[0];
      if (resume) {
        cursor = resume;
        confirmedAt = resume;
      } else if (first) {
        cursor = { segment: first.id, offset: 0 };
      }
      // Appends always go to a fresh segment, so a segment being replayed is never also written.
      // Past the checkpoint's segment too: after every segment was deleted, a new segment with an
      // old id would count as confirmed up to the checkpoint's offset on the next start.
      await appender.openSegment(Math.max(first ? last().id : 0, checkpoint?.segment ?? 0) + 1);
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
      try {
        await readInto(out, maxBytes);
      } catch (err) {
        // The handle may be what failed: the next read opens the segment again.
        const old = readHandle;
        readHandle = undefined;
        await old?.handle.close().catch(() => undefined);
        // The cursor already stands past what `out` holds: dropping it here would leave those
        // records counted as read but never written, and the next confirm would cover them.
        if (out.length > 0) return out;
        throw new GatewayError(
          'LL_SPOOL_READ_FAILED',
          `could not read spool segment ${cursor.segment} (${errText(err)}): the readings stay in the spool and are read again`,
          { cause: err },
        );
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
          await handle.close().catch(() => undefined);
        }
        // A segment left behind is only replayed after a restart (written twice, never lost), and
        // the next confirm or start-up tries again; a failed delete must not stop the confirm.
        await rm(seg.path, { force: true }).catch((err: unknown) =>
          log.warn({ segment: seg.path, err: errText(err) }, 'could not delete a written spool segment'),
        );
      }
      // Before the checkpoint: a checkpoint that cannot be written (full disk) must not keep
      // appends waiting for room that is already free.
      admitWaiting();
      await writeCheckpoint(false);
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
      await appender.close();
      // An empty last segment is noise on the next start.
      const tail = segments[segments.length - 1];
      if (tail && tail.size === 0 && segments.length > 1) await rm(tail.path, { force: true });
      else if (tail && tail.size === 0 && (await stat(tail.path).catch(() => undefined))?.size === 0) {
        await rm(tail.path, { force: true });
      }
    },
  };
}
