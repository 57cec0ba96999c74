// PBKDF2 off the libuv thread pool: one dedicated worker thread and a bounded queue in front of it.
// crypto.pbkdf2 and the spool's fs writes share libuv's four threads, so a flood of wrong passwords
// (24/s at 210,000 iterations) delayed every spool commit and raised all devices' PUBACK p50 from
// 1.8 ms to 203 ms (docs/architecture.md, Pitfalls). Here a flood costs at most one core and a
// queue of `maxPending`;
// beyond that `hash` fails at once with LL_AUTH_BUSY instead of queueing without limit. One owner
// (the broker passes the remote address) may hold at most a quarter of the queue, so a flood from
// one address cannot keep every other device's first login out.
import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.js';

export type HashFn = (
  secret: string | Buffer,
  salt: Buffer,
  iterations: number,
  keylen: number,
  owner?: string,
) => Promise<Buffer>;

export interface HashPool {
  readonly hash: HashFn;
  /** Requests queued or running. */
  readonly pending: number;
  /** Requests refused because the queue was full. */
  readonly refused: number;
  /** Ends the thread; queued requests fail. Idempotent. */
  stop(): Promise<void>;
}

type Reply = { id: number; out?: Uint8Array; error?: string };

function spawnWorker(): Worker {
  const entry = new URL(`./hash-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
  // From source (tests, tsx) the worker registers tsx's loader first; the build is plain JS.
  // None of the gateway's node flags (--cpu-prof, --import, heap sizes) are meant for this thread.
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { execArgv: [] });
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { eval: true, execArgv: [] });
}

/** A thread idle this long is ended: it holds ~10 MiB of RSS that a steady fleet does not need. */
const IDLE_MS = 5000;

/** Requests in the queue per owner; owners with none are forgotten. */
function createOwnerCounts() {
  const counts = new Map<string, number>();
  return {
    of: (owner: string) => counts.get(owner) ?? 0,
    add(owner: string, n: number) {
      const next = (counts.get(owner) ?? 0) + n;
      if (next <= 0) counts.delete(owner);
      else counts.set(owner, next);
    },
  };
}

type Waiter = { resolve: (b: Buffer) => void; reject: (e: Error) => void };

/** The hashing thread, started on demand and ended when idle; it answers the `waiting` requests. */
interface HashThread {
  /** Sends a request, starting the thread if none runs, and cancels a pending idle end. */
  post(request: {
    id: number;
    secret: string | Buffer;
    salt: Buffer;
    iterations: number;
    keylen: number;
  }): void;
  /** Lets the thread go (a later `post` starts a new one) and returns it for termination. */
  detach(): Worker | undefined;
}

function createHashThread(
  waiting: Map<number, Waiter>,
  idleMs: number,
  failAll: (err: Error) => void,
): HashThread {
  let worker: Worker | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const endWhenIdle = (w: Worker) => {
    idleTimer = setTimeout(() => {
      if (worker === w && waiting.size === 0) {
        worker = undefined;
        void w.terminate();
      }
    }, idleMs);
    idleTimer.unref();
  };
  const start = (): Worker => {
    const w = spawnWorker();
    // An idle hashing thread must not keep the process alive.
    w.unref();
    w.on('message', (reply: Reply) => {
      const entry = waiting.get(reply.id);
      if (!entry) return;
      waiting.delete(reply.id);
      if (waiting.size === 0) endWhenIdle(w);
      if (reply.out) entry.resolve(Buffer.from(reply.out.buffer, reply.out.byteOffset, reply.out.length));
      else entry.reject(new Error(`password hashing failed: ${reply.error ?? 'no result'}`));
    });
    w.on('error', (err) => {
      if (worker === w) failAll(new Error(`password hashing thread failed: ${err.message}`));
    });
    // A thread ended on purpose (idle, stop) was already let go; only an unexpected exit fails the queue.
    w.on('exit', () => {
      if (worker !== w) return;
      worker = undefined;
      failAll(new Error('password hashing thread exited'));
    });
    return w;
  };
  return {
    post(request) {
      clearTimeout(idleTimer);
      worker ??= start();
      worker.postMessage(request);
    },
    detach() {
      clearTimeout(idleTimer);
      const w = worker;
      worker = undefined;
      return w;
    },
  };
}

export function createHashPool(opts: { maxPending: number; idleMs?: number }): HashPool {
  let seq = 0;
  let refused = 0;
  const maxPerOwner = Math.max(1, Math.ceil(opts.maxPending / 4));
  const perOwner = createOwnerCounts();
  const waiting = new Map<number, Waiter>();
  const failAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  const thread = createHashThread(waiting, opts.idleMs ?? IDLE_MS, failAll);
  return {
    hash(secret, salt, iterations, keylen, owner = '') {
      const mine = perOwner.of(owner);
      if (waiting.size >= opts.maxPending || mine >= maxPerOwner) {
        refused++;
        const why =
          mine >= maxPerOwner
            ? `${mine} password checks from ${owner || 'this client'} are already queued`
            : `${waiting.size} password checks are already queued`;
        return Promise.reject(
          new GatewayError('LL_AUTH_BUSY', `${why} (auth.maxPendingVerifications); try again shortly`),
        );
      }
      perOwner.add(owner, 1);
      const id = ++seq;
      return new Promise<Buffer>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        thread.post({ id, secret, salt, iterations, keylen });
      }).finally(() => perOwner.add(owner, -1));
    },
    get pending() {
      return waiting.size;
    },
    get refused() {
      return refused;
    },
    async stop() {
      const w = thread.detach();
      failAll(new Error('the gateway is stopping'));
      if (w) await w.terminate();
    },
  };
}
