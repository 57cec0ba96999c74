// Batch taking for the drain: reads ahead from the queue and gathers up to batchSize lines, or
// fewer once the oldest has waited flushInterval. One taker at a time, so batches leave in queue
// order. It never confirms and never drops a record it read: a read that fails is retried.
import { backoffDelay } from './backoff.js';
import type { DrainContext } from './drain-context.js';
import type { QueuedRecord } from './queue.js';

const BYTES_PER_LINE_GUESS = 200;

export interface BatchTaker {
  /** The next batch in queue order; empty when the drain stops (or a read failed with nothing held). */
  take(): Promise<QueuedRecord[]>;
}

interface TakeState {
  // Records read but not yet in a batch. Each read is an async hop, and on a busy event loop a hop
  // can take hundreds of milliseconds: reading enough for every writer at once keeps the drain's
  // throughput from being capped at one batch per hop (bench/e2e.ts found this at ~10,000/s).
  // They stay unconfirmed in the queue, so a stop or crash loses nothing.
  prefetched: QueuedRecord[];
  readFailures: number;
  taking: Promise<QueuedRecord[]> | undefined;
}

/** Reads ahead; on a failed read, waits (backoff) and returns nothing, keeping what was taken. */
async function readAhead(ctx: DrainContext, st: TakeState, lines: number): Promise<void> {
  const { opts, stats } = ctx;
  const want = Math.max(1, opts.batchSize * Math.max(1, opts.concurrency) - lines);
  try {
    st.prefetched = await opts.queue.read(want * BYTES_PER_LINE_GUESS);
  } catch (err) {
    stats.readErrors++;
    st.readFailures++;
    if (st.readFailures === 1) opts.log.error({ err }, 'spool read failed; reading again with backoff');
    await ctx.sleep(backoffDelay(st.readFailures, ctx.policy));
    return;
  }
  if (st.readFailures > 0) opts.log.info({ failedReads: st.readFailures }, 'spool reads recovered');
  st.readFailures = 0;
}

/** Gathers up to batchSize lines: returns early when the oldest waited flushInterval. */
async function takeBatch(ctx: DrainContext, st: TakeState): Promise<QueuedRecord[]> {
  const { opts } = ctx;
  const batch: QueuedRecord[] = [];
  let lines = 0;
  let deadline = 0;
  while (!ctx.stopping) {
    if (st.prefetched.length === 0) {
      await readAhead(ctx, st, lines);
      // After a failed read, what this batch holds goes out now rather than after the outage.
      if (st.prefetched.length === 0 && st.readFailures > 0) {
        if (batch.length > 0) break;
        continue;
      }
    }
    let used = 0;
    while (used < st.prefetched.length && lines < opts.batchSize) {
      const r = st.prefetched[used++] as QueuedRecord;
      batch.push(r);
      lines += countLines(r.payload);
    }
    st.prefetched = used === st.prefetched.length ? [] : st.prefetched.slice(used);
    if (lines >= opts.batchSize) break;
    if (batch.length > 0 && deadline === 0) deadline = Date.now() + opts.flushIntervalMs;
    const wait = batch.length > 0 ? deadline - Date.now() : opts.flushIntervalMs;
    if (batch.length > 0 && wait <= 0) break;
    await opts.queue.waitForData(Math.max(wait, 1));
  }
  return batch;
}

export function createBatchTaker(ctx: DrainContext): BatchTaker {
  const st: TakeState = { prefetched: [], readFailures: 0, taking: undefined };
  return {
    async take() {
      // One taker at a time keeps batches in queue order.
      while (st.taking) await st.taking.catch(() => undefined);
      const take = takeBatch(ctx, st);
      st.taking = take;
      return take.finally(() => {
        st.taking = undefined;
      });
    },
  };
}

function countLines(payload: Buffer): number {
  let n = 1;
  for (let i = payload.indexOf(10); i !== -1; i = payload.indexOf(10, i + 1)) n++;
  return n;
}
