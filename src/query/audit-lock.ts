// The lock that orders the audit log's appends across processes: the gateway appends exports
// while a `livinglab` command beside it appends a registry change, and each append must read the
// chain's end and write the entry after it with nobody in between. The lock file itself
// (registry/lock-file.ts) names its holder, never a secret; a holder that died is taken over.
import { GatewayError } from '../errors.js';
import { withLockFile } from '../registry/lock-file.js';

export interface LockOptions {
  /** A lock file whose holder cannot be checked (another host, an older version) is taken over once this old. */
  readonly staleMs?: number;
  /** Give up (LL_AUDIT_LOCKED) after waiting this long. */
  readonly timeoutMs?: number;
}

/** Runs `fn` holding `lockFile`; appends take milliseconds, so waiting is short and rare. */
export async function withLock<T>(
  lockFile: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const { staleMs = 10_000, timeoutMs = 15_000 } = opts;
  return withLockFile(lockFile, fn, {
    staleMs,
    timeoutMs,
    locked: (holder) =>
      new GatewayError(
        'LL_AUDIT_LOCKED',
        `the audit log is locked by another process (${holder}, lock ${lockFile}) for more than ${timeoutMs / 1000} s; if that process is no longer running, delete that file`,
      ),
  });
}
