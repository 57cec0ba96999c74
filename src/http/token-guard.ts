// Brute force against HTTP credentials (researcher, staff and ops tokens), per remote address:
//   - below `delayAfter` recent bad credentials an address is answered at once;
//   - from `delayAfter` on, its 401 is held for a delay that doubles with each further failure;
//   - from `refuseAfter` on, it is refused unchecked (429 with Retry-After) for such a delay.
// A good credential clears its address; nothing one address does touches another, so a valid
// token from elsewhere is unaffected. Failures are forgotten after a quiet period of 4 × maxMs, and
// at most `maxKeys` addresses are remembered (the least recently failed are forgotten first).
// MQTT logins have their own backoff (registry/auth-backoff.ts): there an address is never locked,
// because a care home's devices share one NAT address and must not keep each other out; a
// researcher or a scraper has no such neighbours, and the issue asks for a refusal here.
// Counts every refusal by reason for /metrics and logs the token id at most, never its secret.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';
import type { Denied, DenyReason } from '../query/access.js';

export interface TokenGuardOptions {
  delayAfter: number;
  refuseAfter: number;
  baseMs: number;
  maxMs: number;
  maxKeys?: number;
  now?: () => number;
  log?: Logger;
}

/** What the guard decides for one address; pure, with the injected clock. */
export interface AddressBackoff {
  /** Milliseconds the address stays refused unchecked (0: check its credential). */
  refusedFor(address: string): number;
  /** Records a bad credential; returns how long to hold its 401. */
  fail(address: string): number;
  succeed(address: string): void;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  refusedUntil: number;
}

export function createAddressBackoff(opts: Omit<TokenGuardOptions, 'log'>): AddressBackoff {
  const now = opts.now ?? (() => Date.now());
  const maxKeys = opts.maxKeys ?? 100_000;
  const entries = new Map<string, Entry>();
  const doubling = (n: number) => Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(30, n));
  const current = (address: string, t: number) => {
    const e = entries.get(address);
    if (e && t - e.lastFailureAt > 4 * opts.maxMs && t >= e.refusedUntil) {
      entries.delete(address);
      return undefined;
    }
    return e;
  };
  return {
    refusedFor(address) {
      const t = now();
      const e = current(address, t);
      return e ? Math.max(0, e.refusedUntil - t) : 0;
    },
    fail(address) {
      const t = now();
      const e = current(address, t) ?? { failures: 0, lastFailureAt: t, refusedUntil: t };
      entries.delete(address);
      e.failures++;
      e.lastFailureAt = t;
      // Re-inserted, so the map's order is least recently failed first.
      entries.set(address, e);
      for (const oldest of entries.keys()) {
        if (entries.size <= maxKeys) break;
        entries.delete(oldest);
      }
      if (e.failures >= opts.refuseAfter) {
        e.refusedUntil = t + doubling(e.failures - opts.refuseAfter);
        return 0;
      }
      return e.failures >= opts.delayAfter ? doubling(e.failures - opts.delayAfter) : 0;
    },
    succeed(address) {
      entries.delete(address);
    },
  };
}

/** Bad credentials: a guess was made. A missing token or a valid one without the right is not one. */
const GUESSES: ReadonlySet<DenyReason> = new Set([
  'malformed',
  'unknown',
  'wrong-secret',
  'revoked',
  'expired',
]);

export interface TokenGuard {
  /** Refusals by reason (the DenyReason values, and `refused` for a 429), for /metrics. */
  readonly failures: Readonly<Record<string, number>>;
  /**
   * Checks the request's credential with `check` unless its address is refused (429). A refusal
   * is counted, logged and sent here (a 401 after its hold delay); resolves the access when it was
   * granted, undefined when the reply has been sent.
   */
  guard<T extends { ok: true }>(
    req: FastifyRequest,
    reply: FastifyReply,
    check: () => Promise<T | Denied>,
  ): Promise<T | undefined>;
  /**
   * Answers every held 401 now and holds no more: the HTTP servers wait for open requests when
   * they close, and a shutdown must not wait out an attacker's backoff (up to maxMs each).
   */
  stop(): void;
}

export function createTokenGuard(opts: TokenGuardOptions): TokenGuard {
  const backoff = createAddressBackoff(opts);
  const failures: Record<string, number> = {};
  const held = new Set<() => void>();
  let stopped = false;
  const hold = (ms: number) =>
    new Promise<void>((resolve) => {
      const release = () => {
        clearTimeout(timer);
        held.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      held.add(release);
    });
  const count = (reason: string) => {
    failures[reason] = (failures[reason] ?? 0) + 1;
  };
  return {
    failures,
    async guard(req, reply, check) {
      const address = req.ip;
      const refused = backoff.refusedFor(address);
      if (refused > 0) {
        count('refused');
        // Under a flood these come thousands of times a second: counted, logged only at debug.
        opts.log?.debug(
          { remoteAddress: address, url: req.url, refusedMs: refused },
          'HTTP credential refused unchecked',
        );
        reply
          .code(429)
          .header('retry-after', String(Math.ceil(refused / 1000)))
          .send({
            error: `too many bad tokens from ${address}; try again in ${Math.ceil(refused / 1000)} s`,
          });
        return undefined;
      }
      const access = await check();
      if (access.ok) {
        backoff.succeed(address);
        return access;
      }
      count(access.reason);
      const delayMs = GUESSES.has(access.reason) ? backoff.fail(address) : 0;
      const fields = {
        remoteAddress: address,
        url: req.url,
        reason: access.reason,
        tokenId: access.tokenId,
        delayMs,
      };
      opts.log?.warn(fields, 'HTTP credential refused');
      if (delayMs > 0 && !stopped) await hold(delayMs);
      if (access.status === 401) reply.header('www-authenticate', 'Bearer');
      reply.code(access.status).send({ error: access.message });
      return undefined;
    },
    stop() {
      stopped = true;
      for (const release of [...held]) release();
    },
  };
}
