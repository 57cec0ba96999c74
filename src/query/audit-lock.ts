// A lock file that orders the audit log's appends across processes: the gateway appends exports
// while a `livinglab` command beside it appends a registry change, and each append must read the
// chain's end and write the entry after it with nobody in between. Created with O_EXCL, removed
// after the append; a lock older than `staleMs` is a crashed holder's and is taken over. Holds
// nothing but the holder's pid, never a secret.
import { open, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors.js';

export interface LockOptions {
  /** A lock file untouched this long was left by a process that died holding it. */
  readonly staleMs?: number;
  /** Give up (LL_AUDIT_LOCKED) after waiting this long. */
  readonly timeoutMs?: number;
}

async function tryCreate(lockFile: string): Promise<boolean> {
  try {
    const h = await open(lockFile, 'wx', 0o600);
    await h.writeFile(`${process.pid}\n`);
    await h.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Runs `fn` holding `lockFile`; appends take milliseconds, so waiting is short and rare. */
export async function withLock<T>(
  lockFile: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const { staleMs = 10_000, timeoutMs = 15_000 } = opts;
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  while (!(await tryCreate(lockFile))) {
    const age = await stat(lockFile).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > staleMs) {
      await unlink(lockFile).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline)
      throw new GatewayError(
        'LL_AUDIT_LOCKED',
        `the audit log is locked by another process (${lockFile}) for more than ${timeoutMs / 1000} s; if no livinglab process is running, delete that file`,
      );
    await sleep(wait);
    wait = Math.min(wait * 2, 50);
  }
  try {
    return await fn();
  } finally {
    await unlink(lockFile).catch(() => undefined);
  }
}
