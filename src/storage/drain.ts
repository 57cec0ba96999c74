// Drains the record queue (the spool, or the memory queue) into a Writer: batches by size and
// interval, a bounded number of writes in flight, retries with backoff and jitter for anything that
// is not the data's fault, and for bad data (4xx) splits the batch until the offending lines are
// found. Those go to the rejects log with InfluxDB's message; the rest are written. Records are
// confirmed in order, and only when every line in them is either in the database or in the rejects
// log.
//
// A worker never dies and never lets go of a batch it took: a failed spool read, a failed rejects-log
// append or an unexpected error is retried with backoff. Records are confirmed in order, so a batch
// that is lost in a worker would be confirmed by the next one without ever being written.
//
// Its parts: drain-batch.ts takes batches in queue order, drain-delivery.ts writes one until every
// line is in the database or the rejects log, and this file runs the workers and confirms.
import type { Logger } from '../log.js';
import { type BackoffPolicy, backoffDelay } from './backoff.js';
import { type BatchTaker, createBatchTaker } from './drain-batch.js';
import { createDrainContext, type DrainContext, StopRequested } from './drain-context.js';
import { deliverBatch } from './drain-delivery.js';
import type { Position, QueuedRecord, RecordQueue } from './queue.js';
import type { RejectsLog } from './rejects-log.js';
import type { Writer } from './writer.js';

export interface DrainOptions {
  queue: RecordQueue;
  writer: Writer;
  rejects: RejectsLog;
  log: Logger;
  batchSize: number;
  flushIntervalMs: number;
  concurrency: number;
  backoff?: BackoffPolicy;
}

export interface DrainStats {
  pointsWritten: number;
  pointsRejected: number;
  writeRetries: number;
  batchesWritten: number;
  lastWriteAt: number | undefined;
  /** Seconds each successful write took (for the latency histogram). */
  onWriteLatency?: (seconds: number) => void;
  /** False while the database keeps failing. */
  healthy: boolean;
  /** Failed reads of the queue (each retried with backoff). */
  readErrors: number;
  /** Drain workers running (`concurrency` while started). */
  workers: number;
}

export interface Drain {
  start(): void;
  /** Stops taking new batches; waits up to `deadlineMs` for what is in flight, and returns. */
  stop(deadlineMs: number): Promise<void>;
  /** Resolves when everything appended so far is confirmed (tests, shutdown), or after the timeout. */
  idle(timeoutMs: number): Promise<boolean>;
  readonly stats: DrainStats;
}

/** Confirms batches in the order they were taken, whatever order their writes finish in. */
function createInOrderConfirmer(queue: RecordQueue, log: Logger) {
  let nextToConfirm = 0;
  const done = new Map<number, Position>();
  return async (id: number, position: Position) => {
    done.set(id, position);
    let last: Position | undefined;
    while (done.has(nextToConfirm)) {
      last = done.get(nextToConfirm);
      done.delete(nextToConfirm);
      nextToConfirm++;
    }
    if (!last) return;
    try {
      await queue.confirm(last);
    } catch (err) {
      // The points are in the database; a failed confirm only means a replay after a restart
      // (idempotent by series and time). The drain must keep going.
      log.error({ err }, 'could not record written points as confirmed; continuing');
    }
  };
}

interface Workers {
  ctx: DrainContext;
  taker: BatchTaker;
  confirm: (id: number, position: Position) => Promise<void>;
  nextId: () => number;
}

async function work(w: Workers) {
  const { ctx } = w;
  while (!ctx.stopping) {
    const batch = await w.taker.take();
    if (batch.length === 0) continue;
    const id = w.nextId();
    // Its id is taken: until it is confirmed no later batch is, so it is never given up.
    for (let attempt = 1; ; attempt++) {
      try {
        await deliverBatch(ctx, batch);
        break;
      } catch (err) {
        if (err instanceof StopRequested || ctx.stopping) return;
        ctx.opts.log.error({ err, attempt }, 'drain could not deliver a batch; retrying');
        await ctx.sleep(backoffDelay(attempt, ctx.policy));
      }
    }
    await w.confirm(id, (batch[batch.length - 1] as QueuedRecord).position);
  }
}

async function runWorker(w: Workers) {
  const { ctx } = w;
  ctx.stats.workers++;
  try {
    for (;;) {
      try {
        return await work(w);
      } catch (err) {
        // Not reached by design (every step above retries); kept so a worker never dies.
        ctx.opts.log.error({ err }, 'drain worker error; restarting it');
        await ctx.sleep(backoffDelay(1, ctx.policy));
      }
    }
  } finally {
    ctx.stats.workers--;
  }
}

export function createDrain(opts: DrainOptions): Drain {
  const ctx = createDrainContext(opts);
  let seq = 0;
  const w: Workers = {
    ctx,
    taker: createBatchTaker(ctx),
    confirm: createInOrderConfirmer(opts.queue, opts.log),
    nextId: () => seq++,
  };
  let workers: Promise<void>[] = [];

  return {
    stats: ctx.stats,
    start() {
      ctx.stopping = false;
      workers = Array.from({ length: Math.max(1, opts.concurrency) }, () => runWorker(w));
    },
    async idle(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (opts.queue.stats.unconfirmedRecords > 0) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 20));
      }
      return true;
    },
    async stop(deadlineMs) {
      // Give the unconfirmed records (batches being written and those still unread) the deadline to
      // reach the database, then stop retrying.
      await this.idle(deadlineMs);
      ctx.stopping = true;
      ctx.wakeSleepers();
      await Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}
