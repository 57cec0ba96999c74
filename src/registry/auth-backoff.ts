// Backoff after failed logins, per username and per remote address. Pure state with an injected
// clock: the broker asks it how long to hold a refusal and whether to check a password at all.
//   - A username with `usernameAfter` or more recent failures is locked for a delay that doubles
//     with each further failure (up to `maxMs`): attempts during the lock are refused when it ends,
//     without hashing, so guessing one account's password costs the attacker time, not us CPU.
//   - An address with `addressAfter` or more recent failures has its refusals held for the same
//     kind of delay, but is never locked: many devices of one care home share one NAT address, and
//     one misconfigured device there must not keep the others out.
// A success clears its username; failures are forgotten after a quiet period of 4 × maxMs.
// Never stores passwords; usernames and addresses only, in a bounded map. A username is whatever an
// anonymous client sends (up to the CONNECT limit, 8 KiB): long ones are kept as a digest, so the
// map's 100,000 entries hold a few MiB, not the 800 MiB that 8-KiB names would take.
import { createHash } from 'node:crypto';

/** Longest username kept as itself; longer ones are keyed by their SHA-256. */
const MAX_PLAIN_KEY = 64;
const keyOf = (kind: 'u' | 'a', name: string) =>
  name.length <= MAX_PLAIN_KEY
    ? `${kind}:${name}`
    : `${kind}#${createHash('sha256').update(name).digest('base64')}`;

export interface BackoffOptions {
  usernameAfter: number;
  addressAfter: number;
  baseMs: number;
  maxMs: number;
  /** Most usernames and addresses remembered (the oldest are forgotten first). */
  maxKeys?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  until: number;
}

export function createAuthBackoff(opts: BackoffOptions) {
  const now = opts.now ?? (() => Date.now());
  const maxKeys = opts.maxKeys ?? 100_000;
  const forgetAfterMs = 4 * opts.maxMs;
  const entries = new Map<string, Entry>();
  const delayAfter = (failures: number, after: number) =>
    failures < after ? 0 : Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(30, failures - after));
  const current = (key: string, t: number): Entry | undefined => {
    const e = entries.get(key);
    if (e && t - e.lastFailureAt > forgetAfterMs && t >= e.until) {
      entries.delete(key);
      return undefined;
    }
    return e;
  };
  const fail = (key: string, after: number, t: number): number => {
    const e = current(key, t) ?? { failures: 0, lastFailureAt: t, until: t };
    entries.delete(key);
    e.failures++;
    e.lastFailureAt = t;
    const delay = delayAfter(e.failures, after);
    e.until = t + delay;
    // Re-inserted, so the map's order is least recently failed first.
    entries.set(key, e);
    for (const oldest of entries.keys()) {
      if (entries.size <= maxKeys) break;
      entries.delete(oldest);
    }
    return delay;
  };
  return {
    /** Milliseconds this username stays locked (0: check its password). */
    lockedFor(username: string): number {
      const t = now();
      const e = current(keyOf('u', username), t);
      return e ? Math.max(0, e.until - t) : 0;
    },
    /** Records a failed login; returns how long to hold its refusal. */
    fail(username: string, address: string): number {
      const t = now();
      return Math.max(
        fail(keyOf('u', username), opts.usernameAfter, t),
        fail(keyOf('a', address), opts.addressAfter, t),
      );
    },
    succeed(username: string): void {
      entries.delete(keyOf('u', username));
    },
    /** Characters of the keys held (each entry's own cost is about 100 bytes more). */
    get keyChars(): number {
      let n = 0;
      for (const k of entries.keys()) n += k.length;
      return n;
    },
  };
}
