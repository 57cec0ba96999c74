// Drains the queue (spool) into a Writer: batches by size and interval, a bounded number of writes
// in flight, retries with backoff and jitter for anything that is not the data's fault, and for bad
// data (4xx) splits the batch until the offending lines are found. Those go to the rejects log
// with InfluxDB's message; the rest are written. Records are confirmed in order, and only when every
// line in them is either in the database or in the rejects log.
//
// A worker never dies and never lets go of a batch it took: a failed spool read, a failed rejects-log
// append or an unexpected error is retried with backoff. Records are confirmed in order, so a batch
// that is lost in a worker would be confirmed by the next one without ever being written.
import type { Logger } from '../log.js';
import { type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
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

const BYTES_PER_LINE_GUESS = 200;

export function createDrain(opts: DrainOptions): Drain {
  const { queue, writer, rejects, log } = opts;
  const policy = opts.backoff ?? DEFAULT_BACKOFF;
  const stats: DrainStats = {
    pointsWritten: 0,
    pointsRejected: 0,
    writeRetries: 0,
    batchesWritten: 0,
    lastWriteAt: undefined,
    healthy: true,
    readErrors: 0,
    workers: 0,
  };
  let stopping = false;
  let workers: Promise<void>[] = [];
  let taking: Promise<QueuedRecord[]> | undefined;
  let seq = 0;
  let nextToConfirm = 0;
  const done = new Map<number, Position>();
  const sleepers = new Set<() => void>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });

  const setHealthy = (healthy: boolean, detail: Record<string, unknown>) => {
    if (healthy === stats.healthy) return;
    stats.healthy = healthy;
    if (healthy) log.info(detail, 'database writes recovered');
    else log.warn(detail, 'database writes failing; readings stay in the spool and are retried');
  };

  // Records read but not yet in a batch. Each read is an async hop, and on a busy event loop a hop
  // can take hundreds of milliseconds: reading enough for every writer at once keeps the drain's
  // throughput from being capped at one batch per hop (bench/e2e.ts found this at ~10,000/s).
  // They stay unconfirmed in the queue, so a stop or crash loses nothing.
  let prefetched: QueuedRecord[] = [];
  let readFailures = 0;

  /** Reads ahead; on a failed read, waits (backoff) and returns nothing, keeping what was taken. */
  const readAhead = async (lines: number): Promise<void> => {
    const want = Math.max(1, opts.batchSize * Math.max(1, opts.concurrency) - lines);
    try {
      prefetched = await queue.read(want * BYTES_PER_LINE_GUESS);
    } catch (err) {
      stats.readErrors++;
      readFailures++;
      if (readFailures === 1)
        log.error({ err: (err as Error).message }, 'spool read failed; reading again with backoff');
      await sleep(backoffDelay(readFailures, policy));
      return;
    }
    if (readFailures > 0) log.info({ failedReads: readFailures }, 'spool reads recovered');
    readFailures = 0;
  };

  /** Gathers up to batchSize lines: returns early when the oldest waited flushInterval. */
  const takeBatch = async (): Promise<QueuedRecord[]> => {
    const batch: QueuedRecord[] = [];
    let lines = 0;
    let deadline = 0;
    while (!stopping) {
      if (prefetched.length === 0) {
        await readAhead(lines);
        // After a failed read, what this batch holds goes out now rather than after the outage.
        if (prefetched.length === 0 && readFailures > 0) {
          if (batch.length > 0) break;
          continue;
        }
      }
      let used = 0;
      while (used < prefetched.length && lines < opts.batchSize) {
        const r = prefetched[used++] as QueuedRecord;
        batch.push(r);
        lines += countLines(r.payload);
      }
      prefetched = used === prefetched.length ? [] : prefetched.slice(used);
      if (lines >= opts.batchSize) break;
      if (batch.length > 0 && deadline === 0) deadline = Date.now() + opts.flushIntervalMs;
      const wait = batch.length > 0 ? deadline - Date.now() : opts.flushIntervalMs;
      if (batch.length > 0 && wait <= 0) break;
      await queue.waitForData(Math.max(wait, 1));
    }
    return batch;
  };

  /** Writes lines until each is in the database or isolated as bad; returns the bad ones. */
  const writeAll = async (lines: string[]): Promise<{ line: string; error: string }[]> => {
    let attempt = 0;
    for (;;) {
      const started = performance.now();
      const result = await writer.write(lines);
      if (result.ok) {
        setHealthy(true, { writer: writer.name });
        stats.onWriteLatency?.((performance.now() - started) / 1000);
        return [];
      }
      if (result.kind === 'retry') {
        attempt++;
        stats.writeRetries++;
        setHealthy(false, { writer: writer.name, status: result.status, err: result.message });
        if (stopping) throw new StopRequested();
        await sleep(backoffDelay(attempt, policy, result.retryAfterMs));
        if (stopping) throw new StopRequested();
        continue;
      }
      if (lines.length === 1) return [{ line: lines[0] as string, error: result.message }];
      // [InfluxDB 1.x] a 400 "partial write" has stored the good lines already; sending them again
      // overwrites the same series and timestamps, so splitting is safe.
      const mid = Math.ceil(lines.length / 2);
      const left = await writeAll(lines.slice(0, mid));
      const right = await writeAll(lines.slice(mid));
      return [...left, ...right];
    }
  };

  const confirmInOrder = async (id: number, position: Position) => {
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
      log.error({ err: (err as Error).message }, 'could not record written points as confirmed; continuing');
    }
  };

  /** Moves points the database refused to the rejects log; retried until it takes them. */
  const moveToRejects = async (bad: { line: string; error: string }[]) => {
    for (const b of bad) {
      log.warn({ err: b.error }, 'database refused a point as bad data; moved to the rejects log');
      for (let attempt = 1; ; attempt++) {
        try {
          await rejects.append({
            receivedAt: new Date().toISOString(),
            clientId: '',
            topic: '',
            rejections: [{ reason: 'database', errors: [{ path: '', message: b.error }] }],
            payload: Buffer.from(b.line, 'utf8'),
            durable: true,
          });
          break;
        } catch (err) {
          // Not confirmed until it is in the rejects log: else it would be in neither place.
          if (attempt === 1)
            log.error({ err: (err as Error).message }, 'rejects log append failed; retrying');
          if (stopping) throw new StopRequested();
          await sleep(backoffDelay(attempt, policy));
        }
      }
    }
  };

  /** Writes one batch until every line is in the database or the rejects log. */
  const deliver = async (batch: QueuedRecord[]) => {
    const lines = batch.flatMap((r) => r.payload.toString('utf8').split('\n'));
    const bad = await writeAll(lines);
    await moveToRejects(bad);
    stats.pointsRejected += bad.length;
    stats.pointsWritten += lines.length - bad.length;
    stats.batchesWritten++;
    stats.lastWriteAt = Date.now();
  };

  const takeInTurn = async () => {
    // One taker at a time keeps batches in queue order.
    while (taking) await taking.catch(() => undefined);
    const take = takeBatch();
    taking = take;
    return take.finally(() => {
      taking = undefined;
    });
  };

  const worker = async () => {
    while (!stopping) {
      const batch = await takeInTurn();
      if (batch.length === 0) continue;
      const id = seq++;
      // Its id is taken: until it is confirmed no later batch is, so it is never given up.
      for (let attempt = 1; ; attempt++) {
        try {
          await deliver(batch);
          break;
        } catch (err) {
          if (err instanceof StopRequested || stopping) return;
          log.error({ err: (err as Error).message, attempt }, 'drain could not deliver a batch; retrying');
          await sleep(backoffDelay(attempt, policy));
        }
      }
      await confirmInOrder(id, (batch[batch.length - 1] as QueuedRecord).position);
    }
  };

  const runWorker = async () => {
    stats.workers++;
    try {
      for (;;) {
        try {
          return await worker();
        } catch (err) {
          // Not reached by design (every step above retries); kept so a worker never dies.
          log.error({ err: (err as Error).message }, 'drain worker error; restarting it');
          await sleep(backoffDelay(1, policy));
        }
      }
    } finally {
      stats.workers--;
    }
  };

  return {
    stats,
    start() {
      stopping = false;
      workers = Array.from({ length: Math.max(1, opts.concurrency) }, runWorker);
    },
    async idle(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (queue.stats.unconfirmedRecords > 0) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 20));
      }
      return true;
    },
    async stop(deadlineMs) {
      // Give in-flight and queued points the deadline to reach the database, then stop retrying.
      await this.idle(deadlineMs);
      stopping = true;
      for (const wake of [...sleepers]) wake();
      await Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}

class StopRequested extends Error {}

function countLines(payload: Buffer): number {
  let n = 1;
  for (let i = payload.indexOf(10); i !== -1; i = payload.indexOf(10, i + 1)) n++;
  return n;
}
