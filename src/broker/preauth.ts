// Limits on what a connection may cost before it has logged in: new connections per remote address
// (a token bucket each) and one global budget for the bytes that not-yet-authenticated connections
// have handed to aedes. mqtt-packet keeps every byte of an unfinished CONNECT (aedes#831), so
// without the budget 1,000 anonymous sockets each sending most of a large CONNECT held ~200 MiB.
// Pure bookkeeping: it never reads or writes a socket, it only tells the broker which to close.

/** Per-address token buckets: `burst` connections at once, then `ratePerSecond`. */
export function createConnectRateLimiter(opts: {
  ratePerSecond: number;
  burst: number;
  /** Most addresses remembered; full buckets are forgotten first (they carry no state). */
  maxAddresses?: number;
  now?: () => number;
}) {
  const now = opts.now ?? (() => performance.now());
  const maxAddresses = opts.maxAddresses ?? 100_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const fill = (b: { tokens: number; at: number }, t: number) => {
    b.tokens = Math.min(opts.burst, b.tokens + ((t - b.at) / 1000) * opts.ratePerSecond);
    b.at = t;
  };
  const sweep = (t: number) => {
    for (const [address, b] of buckets) {
      fill(b, t);
      if (b.tokens >= opts.burst) buckets.delete(address);
    }
    // Still full of throttled addresses: forget the oldest, which only makes them more lenient.
    for (const address of buckets.keys()) {
      if (buckets.size < maxAddresses) break;
      buckets.delete(address);
    }
  };
  let refused = 0;
  return {
    /** Takes a token for a new connection from `address`; false when the address is over its rate. */
    take(address: string): boolean {
      const t = now();
      let b = buckets.get(address);
      if (!b) {
        if (buckets.size >= maxAddresses) sweep(t);
        b = { tokens: opts.burst, at: t };
        buckets.set(address, b);
      } else fill(b, t);
      if (b.tokens < 1) {
        refused++;
        return false;
      }
      b.tokens -= 1;
      return true;
    },
    get refused() {
      return refused;
    },
  };
}

export interface PreAuthEntry {
  /** Counts bytes this connection handed to aedes; may close connections (this one too) to stay in budget. */
  add(bytes: number): void;
  /** The connection logged in or closed: its bytes no longer count. Idempotent. */
  release(): void;
}

/**
 * One budget for all connections that have not authenticated yet. When it is exceeded, the
 * connections holding the most bytes are closed until the total is back under 90 % of the budget.
 * Largest first, not newest first: a device's whole CONNECT arrives in one segment of a few hundred
 * bytes and is authenticated within milliseconds, so the connections that hold a lot are the ones
 * dribbling a large CONNECT, and closing them frees the most memory with the fewest victims.
 * (Newest first would close a legitimate device that happens to connect during an attack.)
 */
export function createPreAuthBudget(opts: { budgetBytes: number }) {
  const entries = new Map<object, { bytes: number; close: () => void }>();
  let total = 0;
  let closed = 0;
  const shed = () => {
    const target = opts.budgetBytes * 0.9;
    const largest = [...entries.entries()].sort((a, b) => b[1].bytes - a[1].bytes);
    for (const [key, e] of largest) {
      if (total <= target) break;
      entries.delete(key);
      total -= e.bytes;
      closed++;
      e.close();
    }
  };
  return {
    /** Starts counting a connection; `close` is called if it has to go. */
    track(close: () => void): PreAuthEntry {
      const key = {};
      const entry = { bytes: 0, close };
      entries.set(key, entry);
      return {
        add(bytes) {
          if (!entries.has(key)) return;
          entry.bytes += bytes;
          total += bytes;
          if (total > opts.budgetBytes) shed();
        },
        release() {
          if (!entries.delete(key)) return;
          total -= entry.bytes;
        },
      };
    },
    /** Bytes currently held by connections that have not authenticated. */
    get bufferedBytes() {
      return total;
    },
    get connections() {
      return entries.size;
    },
    /** Connections closed to keep within the budget. */
    get closed() {
      return closed;
    },
  };
}
