// In-memory batching between the pipeline and a Writer: flushes by size and by interval, retries a
// failed batch with capped exponential backoff and jitter, keeps order. Points live only in memory
// here; the durable spool replaces this sink behind the same PointSink interface (issue #4).
import type { Logger } from '../log.js';
import type { Point } from './point.js';
import type { PointSink, Writer } from './writer.js';

export interface BatcherOptions {
  writer: Writer;
  batchSize: number;
  flushIntervalMs: number;
  log: Logger;
  /** Called after each accepted batch with its size (metrics, tests). */
  onWritten?: (count: number) => void;
}

export interface Batcher extends PointSink {
  start(): void;
  stop(deadlineMs?: number): Promise<void>;
  readonly written: number;
}

const MAX_BACKOFF_MS = 30_000;

export function createBatcher(opts: BatcherOptions): Batcher {
  const { writer, batchSize, flushIntervalMs, log } = opts;
  let queue: Point[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> | undefined;
  let failures = 0;
  let written = 0;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const writeOnce = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      try {
        await writer.write(batch);
      } catch (err) {
        failures++;
        if (failures === 1)
          log.warn({ err: (err as Error).message, pending: queue.length }, 'InfluxDB write failed; retrying');
        const delay = Math.min(MAX_BACKOFF_MS, 200 * 2 ** Math.min(failures, 10));
        await new Promise<void>((resolve) => {
          retryTimer = setTimeout(resolve, delay / 2 + Math.random() * (delay / 2));
        });
        if (stopped) return;
        continue;
      }
      if (failures > 0) log.info({ after: failures }, 'InfluxDB write recovered');
      failures = 0;
      queue = queue.slice(batch.length);
      written += batch.length;
      opts.onWritten?.(batch.length);
    }
  };

  const kick = (): Promise<void> => {
    writing ??= writeOnce().finally(() => {
      writing = undefined;
    });
    return writing;
  };

  return {
    get pending() {
      return queue.length;
    },
    get written() {
      return written;
    },
    start() {
      timer = setInterval(() => {
        if (queue.length > 0) void kick();
      }, flushIntervalMs);
      timer.unref();
    },
    async append(points) {
      for (const p of points) queue.push(p);
      if (queue.length >= batchSize) void kick();
    },
    async flush(deadlineMs = 10_000) {
      const done = kick();
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise<void>((resolve) => {
          deadline = setTimeout(resolve, deadlineMs);
        }),
      ]);
      clearTimeout(deadline);
    },
    async stop(deadlineMs = 10_000) {
      clearInterval(timer);
      await this.flush(deadlineMs);
      stopped = true;
      clearTimeout(retryTimer);
      if (queue.length > 0)
        log.error({ lost: queue.length }, 'points not written to InfluxDB before shutdown');
    },
  };
}
