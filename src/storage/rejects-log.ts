// The rejects log: one NDJSON line per rejected message, with the original payload, so a lab can
// show a vendor exactly what was sent and why it was refused. Append-only, mode 0600 (payloads are
// health data). Written by the pipeline (bad input) and, later, the drain (InfluxDB 4xx). One device
// cannot fill the disk: each gets a byte budget per day, after which its rejections are counted only.
import { type FileHandle, mkdir, open, rename, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { resolveDataPaths } from '../config/data-paths.js';
import type { Logger } from '../log.js';

/** Why the gateway refused device input (pipeline, frame guard). */
export type InputRejectReason = 'json' | 'schema' | 'topic' | 'time' | 'too-large';
/** Every reason in the log: device input, and `database` for points InfluxDB refused (the drain). */
export type RejectReason = InputRejectReason | 'database';

export interface RejectionError {
  /** JSON Pointer into the reading, for example "/spo2"; "" for the whole reading. */
  readonly path: string;
  readonly message: string;
  readonly value?: unknown;
}

/** One rejection as the log stores it. */
export interface LoggedRejection {
  readonly reason: RejectReason;
  readonly errors: readonly RejectionError[];
  /** Index within `{"readings": [...]}`; 0 for a single reading; absent when the whole message failed. */
  readonly readingIndex?: number;
  /** `pulse-oximeter@1`, when a schema was involved. */
  readonly schema?: string;
}

interface RejectFields {
  receivedAt: string;
  /** '' for points InfluxDB refused: they have no client. */
  clientId: string;
  topic: string;
  /** Rejections of this message (one per invalid reading of a batch; the pipeline lists the first 20). */
  rejections: readonly LoggedRejection[];
  /** All rejections of the message, when more than one: how many, and how many per reason. */
  rejectionCount?: number;
  reasons?: Readonly<Partial<Record<RejectReason, number>>>;
}

/** A line of the log as read back: the payload as text, or base64 when it was not valid UTF-8. */
export interface RejectLine extends RejectFields {
  payload: string;
  payloadEncoding: 'utf8' | 'base64';
}

export interface RejectEntry extends RejectFields {
  payload: Buffer;
  /**
   * Synced to disk before append resolves. The drain sets it: it confirms (and so deletes) the
   * spool records of points InfluxDB refused as soon as their line is appended, so the line must
   * survive a power cut. The pipeline's entries are written before the PUBACK and need no sync.
   */
  durable?: boolean;
}

export interface RejectsLog {
  readonly file: string;
  start(): Promise<void>;
  /**
   * Appends one line, unless the entry's client has spent its bytes for the day: then the entry is
   * only counted (`notLogged`) and the operator is told once per client per day. Entries without a
   * client id (InfluxDB refusals) are always written.
   */
  append(entry: RejectEntry): Promise<void>;
  stop(): Promise<void>;
  readonly count: number;
  /** Entries counted but not written because their client's daily budget was spent. */
  readonly notLogged: number;
  /** Moves the current log aside as rejects-<time>.ndjson and starts a new one; resolves its name (none if empty). */
  rotate(): Promise<string | undefined>;
}

export function encodePayload(payload: Buffer): { payload: string; payloadEncoding: 'utf8' | 'base64' } {
  const text = payload.toString('utf8');
  // Round-trip check: invalid UTF-8 would be mangled, so keep those bytes as base64.
  return Buffer.byteLength(text) === payload.length && Buffer.from(text, 'utf8').equals(payload)
    ? { payload: text, payloadEncoding: 'utf8' }
    : { payload: payload.toString('base64'), payloadEncoding: 'base64' };
}

const isRejectLine = (v: unknown): v is RejectLine =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as RejectLine).receivedAt === 'string' &&
  Array.isArray((v as RejectLine).rejections);

/**
 * The entries of one rejects log (current or rotated), in order; none when the file cannot be
 * read. Lines are streamed, so a large log is never held in memory at once. A line that is not an
 * entry (torn by a crash or a full disk, edited by hand) is skipped and reported to `onUnreadable`
 * by its line number: one bad line never hides the rest of the file.
 */
export async function* readRejects(
  file: string,
  onUnreadable?: (line: number) => void,
): AsyncGenerator<RejectLine> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return;
  const lines = createInterface({
    input: handle.createReadStream({ encoding: 'utf8' }),
    crlfDelay: Infinity,
  });
  try {
    let n = 0;
    for await (const line of lines) {
      n++;
      if (!line) continue;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = undefined;
      }
      if (isRejectLine(entry)) yield entry;
      else onUnreadable?.(n);
    }
  } finally {
    lines.close();
    await handle.close().catch(() => undefined);
  }
}

export interface RejectsLogDeps {
  dataDir: string;
  /** Bytes one client may add per UTC day; unlimited when absent. */
  maxBytesPerClientPerDay?: number;
  log?: Logger;
  now?: () => Date;
}

/** Clients tracked per day; beyond it new ids share one budget (ids of oversize packets are unauthenticated). */
const MAX_TRACKED_CLIENTS = 100_000;

/**
 * Per-client daily byte budget, forgotten when the (UTC) day changes. The pipeline's client ids
 * are registered devices; the frame guard's may be any id a client sent before it logged in.
 */
function createDailyBudget(deps: RejectsLogDeps) {
  const now = deps.now ?? (() => new Date());
  let day = '';
  const used = new Map<string, number>();
  return {
    /** True when `bytes` more fit in the client's budget for today (and books them). */
    admit(clientId: string, bytes: number): boolean {
      const max = deps.maxBytesPerClientPerDay;
      if (max === undefined || clientId === '') return true;
      const today = now().toISOString().slice(0, 10);
      if (today !== day) {
        day = today;
        used.clear();
      }
      const key = used.has(clientId) || used.size < MAX_TRACKED_CLIENTS ? clientId : '\0others';
      const spent = used.get(key) ?? 0;
      if (spent === Number.POSITIVE_INFINITY) return false;
      if (spent + bytes <= max) {
        used.set(key, spent + bytes);
        return true;
      }
      used.set(key, Number.POSITIVE_INFINITY);
      deps.log?.warn(
        { clientId, limitBytes: max, day },
        'rejects log budget of this device spent for today; its further rejections are counted, not stored',
      );
      return false;
    },
  };
}

interface HeldFile {
  readonly handle: FileHandle;
  /** The inode opened: when the name points elsewhere (removed, moved), the log is reopened. */
  readonly ino: number;
}

/**
 * The log's file handle, never left closed: each use checks that the name still points at the file
 * held and reopens it when not (removed or moved by hand, a rotation that failed halfway), so one
 * bad moment on disk cannot turn every later rejection into an error that disconnects a device.
 */
function createLogFile(dataDir: string, file: string, log: Logger | undefined) {
  let held: HeldFile | undefined;
  const drop = async () => {
    const old = held;
    held = undefined;
    await old?.handle.close().catch(() => undefined);
  };
  const openHeld = async () => {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const handle = await open(file, 'a', 0o600);
    const ino = await handle.stat().then(
      (s) => s.ino,
      async (err: unknown) => {
        await handle.close().catch(() => undefined);
        throw err;
      },
    );
    held = { handle, ino };
    return handle;
  };
  /** The handle of the file now at the log's name, (re)opened as needed. */
  const current = async (): Promise<FileHandle> => {
    const onDisk = await stat(file).catch(() => undefined);
    if (held && onDisk?.ino === held.ino) return held.handle;
    if (held) log?.warn({ file }, 'rejects log was moved or removed outside the gateway: reopened');
    await drop();
    return openHeld();
  };
  return {
    drop,
    current,
    /** Syncs and closes what is held, without reopening anything. */
    async close() {
      await held?.handle.sync().catch(() => undefined);
      await drop();
    },
    /** Appends, and once more on a freshly opened file if the held one failed. */
    async append(line: string, durable: boolean | undefined): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          const handle = await current();
          await handle.appendFile(line, 'utf8');
          if (durable) await handle.datasync();
          return;
        } catch (err) {
          await drop();
          if (attempt === 2) throw err;
        }
      }
    },
  };
}

export function createRejectsLog(deps: RejectsLogDeps): RejectsLog {
  const file = resolveDataPaths(deps.dataDir).rejectsLog;
  const logFile = createLogFile(deps.dataDir, file, deps.log);
  const now = deps.now ?? (() => new Date());
  let running = false;
  let chain: Promise<void> = Promise.resolve();
  let count = 0;
  let notLogged = 0;
  const budget = createDailyBudget(deps);
  return {
    file,
    get count() {
      return count;
    },
    get notLogged() {
      return notLogged;
    },
    async start() {
      await logFile.current();
      running = true;
    },
    append(entry) {
      const line = `${JSON.stringify({
        receivedAt: entry.receivedAt,
        clientId: entry.clientId,
        topic: entry.topic,
        rejections: entry.rejections,
        ...(entry.rejectionCount !== undefined ? { rejectionCount: entry.rejectionCount } : {}),
        ...(entry.reasons ? { reasons: entry.reasons } : {}),
        ...encodePayload(entry.payload),
      })}\n`;
      if (!running) return Promise.reject(new Error('rejects log used before start() or after stop()'));
      // Once spent, the budget stays spent for the day: no small line slips in after a big one.
      if (!budget.admit(entry.clientId, Buffer.byteLength(line))) {
        notLogged++;
        return Promise.resolve();
      }
      // Serialise appends (and rotations) so lines never interleave or land in a closed file.
      const appended = chain.then(async () => {
        await logFile.append(line, entry.durable);
        count++;
      });
      chain = appended.catch(() => undefined);
      return appended;
    },
    rotate() {
      // Rename while the file is still open, then reopen under the name: appends queued behind
      // the rotation go to the new file, and a failed rename leaves the log open where it was.
      const rotated = chain.then(async () => {
        if (!running) return undefined;
        const handle = await logFile.current();
        if ((await handle.stat()).size === 0) return undefined;
        await handle.sync();
        const target = resolveDataPaths(deps.dataDir).rotatedLog('rejects', now());
        await rename(file, target);
        await logFile.drop();
        await logFile.current();
        return target;
      });
      chain = rotated.then(
        () => undefined,
        () => undefined,
      );
      return rotated;
    },
    async stop() {
      running = false;
      await chain.catch(() => undefined);
      await logFile.close();
    },
  };
}
