// What liveness knows of each device, kept in the data folder (`liveness.json`) so that a restart
// forgets neither a device's silence, nor a battery warning already given, nor its retained status
// (aedes keeps retained messages in memory only). The file is replaced atomically (temporary file,
// fsync, rename, fsync of the folder), at most once per write interval however many readings
// arrive, and at stop. A file that cannot be read is skipped with a warning: it never stops the
// gateway from starting, it only costs what it held.
import { readdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../registry/atomic-write.js';

export type DeviceStatus = 'online' | 'offline';

/** One device's liveness as persisted; a device the gateway has never heard of has no entry. */
export interface DeviceLiveness {
  /** When its last message arrived (ms since the epoch). */
  lastSeen?: number;
  /** Judged silent (retained `offline`) and not heard from since. */
  silent: boolean;
  /** A battery warning was given and the battery has not been back above the re-arm level. */
  batteryLow: boolean;
  /** The last status the gateway retained for it. */
  status?: DeviceStatus;
}

const FORMAT_VERSION = 1;

interface FileEntry {
  lastSeen?: string;
  silent?: true;
  batteryLow?: true;
  status?: DeviceStatus;
}

/** The file's text: one entry per device, times in ISO 8601 so an operator can read it. */
export function serialiseLivenessState(devices: ReadonlyMap<string, DeviceLiveness>, at: number): string {
  const out: Record<string, FileEntry> = {};
  for (const [id, d] of devices) {
    const e: FileEntry = {};
    if (d.lastSeen !== undefined) e.lastSeen = new Date(d.lastSeen).toISOString();
    if (d.silent) e.silent = true;
    if (d.batteryLow) e.batteryLow = true;
    if (d.status) e.status = d.status;
    out[id] = e;
  }
  return `${JSON.stringify({ version: FORMAT_VERSION, savedAt: new Date(at).toISOString(), devices: out })}\n`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseEntry(raw: unknown): DeviceLiveness | undefined {
  if (!isObject(raw)) return undefined;
  const lastSeen = typeof raw.lastSeen === 'string' ? Date.parse(raw.lastSeen) : undefined;
  if (raw.lastSeen !== undefined && (lastSeen === undefined || Number.isNaN(lastSeen))) return undefined;
  if (raw.status !== undefined && raw.status !== 'online' && raw.status !== 'offline') return undefined;
  return {
    ...(lastSeen !== undefined ? { lastSeen } : {}),
    silent: raw.silent === true,
    batteryLow: raw.batteryLow === true,
    ...(raw.status !== undefined ? { status: raw.status } : {}),
  };
}

/**
 * The file's devices; an entry that does not parse is left out. Throws (a SyntaxError or an
 * Error saying what is wrong) when the file as a whole is not a liveness state.
 */
export function parseLivenessState(text: string): Map<string, DeviceLiveness> {
  const doc: unknown = JSON.parse(text);
  if (!isObject(doc) || doc.version !== FORMAT_VERSION || !isObject(doc.devices))
    throw new Error(`not a liveness state of version ${FORMAT_VERSION}`);
  const out = new Map<string, DeviceLiveness>();
  for (const [id, raw] of Object.entries(doc.devices)) {
    const entry = parseEntry(raw);
    if (entry) out.set(id, entry);
  }
  return out;
}

/**
 * Reads the state file: none yet is an empty state; a torn or foreign file is an empty state and a
 * warning naming the file. Temporary files a crash left behind (writeFileAtomic's) are removed.
 */
export async function readLivenessState(file: string, log: Logger): Promise<Map<string, DeviceLiveness>> {
  await removeStaleTemporaries(file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    log.warn({ file, err }, 'liveness state unreadable: starting without it');
    return new Map();
  }
  try {
    return parseLivenessState(text);
  } catch (err) {
    log.warn({ file, err }, 'liveness state unreadable: starting without it');
    return new Map();
  }
}

async function removeStaleTemporaries(file: string): Promise<void> {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names)
    if (name.startsWith(prefix) && name.endsWith('.tmp'))
      await unlink(join(dir, name)).catch(() => undefined);
}

/** The timer functions the writer uses; tests inject a clock they move by hand. */
export interface WriterClock {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_CLOCK: WriterClock = {
  now: Date.now,
  setTimeout: (run, ms) => setTimeout(run, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Writes a snapshot when something changed, at most once per `intervalMs`: the first change after
 * a quiet spell is written at once, later ones together when the interval is up. One write runs
 * at a time. `changed()` is cheap (called for every reading); `flush()` writes what is pending now.
 */
export interface ThrottledWriter {
  changed(): void;
  flush(): Promise<void>;
  /** Writes what is pending; no write is scheduled afterwards. Idempotent. */
  stop(): Promise<void>;
}

export interface ThrottledWriterDeps {
  snapshot(): string;
  write(text: string): Promise<void>;
  intervalMs: number;
  log: Logger;
  clock?: WriterClock;
}

export function createThrottledWriter(deps: ThrottledWriterDeps): ThrottledWriter {
  const clock = deps.clock ?? REAL_CLOCK;
  let dirty = false;
  let timer: unknown;
  let writing: Promise<void> | undefined;
  let lastWriteAt = Number.NEGATIVE_INFINITY;
  let failing = false;
  let stopped = false;

  const writeOnce = async () => {
    dirty = false;
    lastWriteAt = clock.now();
    try {
      await deps.write(deps.snapshot());
      if (failing) deps.log.info('liveness state written again');
      failing = false;
    } catch (err) {
      // Kept dirty: written again at the next interval. Logged once per failing spell.
      dirty = true;
      if (!failing) deps.log.warn({ err }, 'liveness state could not be written; retrying');
      failing = true;
    }
  };
  const schedule = () => {
    if (stopped || timer !== undefined || writing || !dirty) return;
    timer = clock.setTimeout(run, Math.max(0, lastWriteAt + deps.intervalMs - clock.now()));
  };
  const run = () => {
    timer = undefined;
    if (!dirty || writing) return;
    writing = writeOnce().finally(() => {
      writing = undefined;
      schedule();
    });
  };
  const flush = async () => {
    while (writing) await writing;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    if (!dirty) return;
    writing = writeOnce();
    await writing;
    writing = undefined;
    schedule();
  };
  return {
    changed() {
      if (dirty) return;
      dirty = true;
      schedule();
    },
    flush,
    async stop() {
      stopped = true;
      await flush();
    },
  };
}

/** The state file's writer: atomic replacement of `file` with the snapshot. */
export const writeStateFile = (file: string) => (text: string) => writeFileAtomic(file, text, 0o600);
