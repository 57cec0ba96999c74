// A lock file held across a read-modify-write of files that several processes change: the registry
// (lab.yaml and its secrets file, by every `livinglab` edit, `simulate` and the gateway's start-up
// migration) and the audit log (each append). What it must never do: let two holders in at once,
// or let a holder that died block the next one for ever.
//
// The file is made complete and then linked into place (link() fails with EEXIST like O_EXCL), so
// nobody ever reads a half-written holder. It names the holder: pid, host, the process's start time
// (Linux /proc/PID/stat, in clock ticks since boot) and a random token. A holder on this host is
// dead when its pid is gone, or when that pid now belongs to a process that started at another
// time (pid reuse). A holder that cannot be checked (another host sharing the folder, or the
// pid-only file of older versions) is taken over only once the file is older than `staleMs`. Two
// waiters that both find a dead holder remove it under a second, short-lived file (`.takeover`),
// so the later one cannot delete the lock the earlier one has just taken.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** Who holds a lock, as its file says. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** When the lock was taken (ISO 8601). */
  readonly since: string;
  /** The holder process's start time (clock ticks since boot), where the system tells it. */
  readonly started?: string;
  readonly token: string;
}

export interface LockFileOptions {
  /** Give up after waiting this long for a live holder. */
  readonly timeoutMs: number;
  /** A holder that cannot be checked is taken over once its file is this old (default: never). */
  readonly staleMs?: number;
  /** The error thrown after `timeoutMs`; `holder` describes who holds it, for the message. */
  readonly locked: (holder: string) => Error;
}

/** A takeover file older than this was left by a process that died in the middle of a takeover. */
const TAKEOVER_STALE_MS = 10_000;

/** The start time of process `pid` in clock ticks since boot (Linux); undefined elsewhere. */
export function processStartTime(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may hold spaces and parentheses, so count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface Seen {
  readonly text: string;
  readonly holder: LockHolder | undefined;
  readonly ageMs: number;
}

async function readLock(lockFile: string): Promise<Seen | undefined> {
  try {
    const [text, s] = await Promise.all([readFile(lockFile, 'utf8'), stat(lockFile)]);
    let holder: LockHolder | undefined;
    try {
      const parsed = JSON.parse(text) as Partial<LockHolder>;
      if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') holder = parsed as LockHolder;
    } catch {
      holder = undefined;
    }
    return { text, holder, ageMs: Date.now() - s.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** true: dead; false: alive; undefined: cannot tell from here. */
function holderDead(holder: LockHolder | undefined): boolean | undefined {
  if (!holder || holder.host !== hostname()) return undefined;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: the pid exists but belongs to another user; that is a live process.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  const started = holder.started === undefined ? undefined : processStartTime(holder.pid);
  return started !== undefined && started !== holder.started;
}

function isStale(seen: Seen, staleMs: number | undefined): boolean {
  const dead = holderDead(seen.holder);
  if (dead !== undefined) return dead;
  return staleMs !== undefined && seen.ageMs > staleMs;
}

export function describeHolder(seen: { holder: LockHolder | undefined; text: string }): string {
  const h = seen.holder;
  if (!h) return `a process that wrote "${seen.text.trim().slice(0, 40)}"`;
  return `pid ${h.pid} on host ${h.host} since ${h.since}`;
}

async function tryCreate(lockFile: string, text: string, token: string): Promise<boolean> {
  const tmp = `${lockFile}.${token}.tmp`;
  try {
    // Inside the try: a write that fails half-way (disk full) leaves no temporary file either.
    await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
    await link(tmp, lockFile);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Removes the lock file `seen` read, unless it changed since; true when it is gone. */
async function removeStale(lockFile: string, seen: Seen): Promise<boolean> {
  const guard = `${lockFile}.takeover`;
  const handle = await open(guard, 'wx', 0o600).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
    const age = await stat(guard).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > TAKEOVER_STALE_MS) await unlink(guard).catch(() => undefined);
    return undefined;
  });
  if (!handle) return false;
  try {
    const now = await readFile(lockFile, 'utf8').catch(() => undefined);
    if (now === undefined) return true;
    // Only the file that was judged dead goes: a lock taken meanwhile has another token.
    if (now !== seen.text) return false;
    await unlink(lockFile).catch(() => undefined);
    return true;
  } finally {
    await handle.close();
    await unlink(guard).catch(() => undefined);
  }
}

/**
 * Runs `fn` holding `lockFile`, waiting (polling, up to `timeoutMs`) while a live process holds
 * it; throws `opts.locked(...)` after that. The lock is released when `fn` settles.
 */
export async function withLockFile<T>(
  lockFile: string,
  fn: () => Promise<T>,
  opts: LockFileOptions,
): Promise<T> {
  const token = randomBytes(8).toString('hex');
  const started = processStartTime('self');
  const holder: LockHolder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    ...(started ? { started } : {}),
    token,
  };
  const text = `${JSON.stringify(holder)}\n`;
  const deadline = Date.now() + opts.timeoutMs;
  let wait = 2;
  while (!(await tryCreate(lockFile, text, token))) {
    const seen = await readLock(lockFile);
    if (!seen) continue;
    if (isStale(seen, opts.staleMs) && (await removeStale(lockFile, seen))) continue;
    if (Date.now() > deadline) throw opts.locked(describeHolder(seen));
    await sleep(wait);
    wait = Math.min(wait * 2, 100);
  }
  try {
    return await fn();
  } finally {
    // Never remove a lock that is no longer ours (taken over by a waiter that judged us dead).
    const now = await readFile(lockFile, 'utf8').catch(() => undefined);
    if (now === text) await unlink(lockFile).catch(() => undefined);
  }
}
