// The end of the spool that appends go to: the active segment, its rotation and its repair. A
// write is counted (segment size) only once all of it is on stable storage (O_DSYNC) in a segment
// whose directory entry is synced; a write that fails counts nothing and leaves nothing uncounted
// in the file, or else every later write is refused until the file is cut back.
import { constants } from 'node:fs';
import { join } from 'node:path';
import { GatewayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { errText, type OpenFile, type Segment, type SpoolFile, segmentName } from './files.js';

export interface Appender {
  /** Opens a fresh segment `id` for appends; its directory entry is synced before it takes records. */
  openSegment(id: number): Promise<void>;
  /** Writes `data` at the end of the active segment and counts it, or counts nothing and throws. */
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
  /** Set while appends are refused: a failed write could not be cut back out of the segment. */
  readonly error: GatewayError | undefined;
  readonly writeErrors: number;
}

interface AppenderDeps {
  dir: string;
  segments: Segment[];
  segmentBytes: number;
  openFile: OpenFile;
  log: Logger;
}

interface AppenderState {
  active: SpoolFile | undefined;
  dirSynced: boolean;
  failed: GatewayError | undefined;
  /** A write failed and none has succeeded since (logged once per run of failures). */
  failing: boolean;
  writeErrors: number;
}

const lastOf = (d: AppenderDeps) => d.segments[d.segments.length - 1] as Segment;

async function syncDir(d: AppenderDeps, st: AppenderState) {
  const dirHandle = await d.openFile(d.dir, 'r');
  await dirHandle.sync().finally(() => dirHandle.close());
  st.dirSynced = true;
}

/** Takes the active handle down first: a failed open must not leave a closed handle as the active one. */
async function dropActive(st: AppenderState) {
  const old = st.active;
  st.active = undefined;
  await old?.close().catch(() => undefined);
}

async function openSegment(d: AppenderDeps, st: AppenderState, id: number) {
  const path = join(d.dir, segmentName(id));
  // O_DSYNC: a write returns once its data is on stable storage, so a group commit is one
  // thread-pool round trip (a write) instead of two (write, then fdatasync). On a busy event loop
  // each round trip waits for the loop, so this halves the time a PUBACK waits for the disk.
  st.active = await d.openFile(
    path,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC,
    0o600,
  );
  d.segments.push({ id, path, size: 0 });
  // The directory entry of a new segment must survive a crash too (retried before the first write).
  st.dirSynced = false;
  await syncDir(d, st);
}

async function ensureSegment(d: AppenderDeps, st: AppenderState) {
  if (st.active && lastOf(d).size < d.segmentBytes) {
    if (!st.dirSynced) await syncDir(d, st);
    return;
  }
  await dropActive(st);
  await openSegment(d, st, lastOf(d).id + 1);
}

// After a write that failed part-way (ENOSPC after a short write), its bytes sit uncounted at the
// end of the segment; later records would land after them, past what the reader and the next
// start-up scan can reach. Cut them; if that fails too, refuse appends until a cut succeeds.
async function cutBack(
  d: AppenderDeps,
  st: AppenderState,
  seg: Segment,
  file: SpoolFile,
  err: unknown,
): Promise<never> {
  st.writeErrors++;
  try {
    await file.truncate(seg.size);
  } catch (cutErr) {
    st.failed = new GatewayError(
      'LL_SPOOL_CUT_FAILED',
      `spool segment ${seg.path} could not be cut back to ${seg.size} bytes after a failed write (${errText(cutErr)}): not acknowledging readings until it can; free disk space or check the disk, or restart the gateway`,
      { cause: cutErr },
    );
    d.log.error(
      { segment: seg.path, size: seg.size, err, cutErr: errText(cutErr) },
      'spool write failed and the segment could not be cut back: not acknowledging readings',
    );
    throw st.failed;
  }
  if (!st.failing)
    d.log.warn(
      { segment: seg.path, size: seg.size, err },
      'spool write failed; segment cut back to its last complete record, readings not acknowledged',
    );
  st.failing = true;
  throw new GatewayError(
    'LL_SPOOL_WRITE_FAILED',
    `could not write to spool segment ${seg.path} (${errText(err)}): readings not acknowledged; free disk space or check the disk`,
    { cause: err },
  );
}

// Tried again with every append while refusing: by path, since the handle may be what is broken;
// appends then go on in a fresh segment.
async function repair(d: AppenderDeps, st: AppenderState) {
  const seg = lastOf(d);
  const file = await d.openFile(seg.path, constants.O_WRONLY);
  await file.truncate(seg.size).finally(() => file.close());
  await dropActive(st);
  st.failed = undefined;
  d.log.info(
    { segment: seg.path, size: seg.size },
    'spool segment cut back after a write error: acknowledging again',
  );
}

async function write(d: AppenderDeps, st: AppenderState, data: Buffer) {
  if (st.failed) {
    const refused = st.failed;
    await repair(d, st).catch(() => {
      throw refused;
    });
  }
  try {
    await ensureSegment(d, st);
  } catch (err) {
    st.writeErrors++;
    throw new GatewayError(
      'LL_SPOOL_WRITE_FAILED',
      `could not open or sync a spool segment in ${d.dir} (${errText(err)}): readings not acknowledged; free disk space or check the disk`,
      { cause: err },
    );
  }
  const seg = lastOf(d);
  const file = st.active as SpoolFile;
  try {
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await file.write(data, done, data.length - done);
      done += bytesWritten;
    }
  } catch (err) {
    await cutBack(d, st, seg, file, err);
  }
  seg.size += data.length;
  if (st.failing) d.log.info({ segment: seg.path }, 'spool writes succeed again');
  st.failing = false;
}

export function createAppender(deps: AppenderDeps): Appender {
  const st: AppenderState = {
    active: undefined,
    dirSynced: true,
    failed: undefined,
    failing: false,
    writeErrors: 0,
  };
  return {
    openSegment: (id) => openSegment(deps, st, id),
    write: (data) => write(deps, st, data),
    get error() {
      return st.failed;
    },
    get writeErrors() {
      return st.writeErrors;
    },
    async close() {
      const old = st.active;
      st.active = undefined;
      await old?.close();
    },
  };
}
