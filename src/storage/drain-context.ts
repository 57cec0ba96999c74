// What the parts of the drain share: its options, its stats, the stop flag and the one sleep that
// a stop cuts short. Holds no decision of its own.

import { type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';
import type { DrainOptions, DrainStats } from './drain.js';

export interface DrainContext {
  readonly opts: DrainOptions;
  readonly policy: BackoffPolicy;
  readonly stats: DrainStats;
  /** Set by stop(): no new batch is taken, and retries give up at their next step. */
  stopping: boolean;
  /** Waits `ms`, or less when the drain stops. */
  sleep(ms: number): Promise<void>;
  /** Ends every sleep now (stop). */
  wakeSleepers(): void;
}

/** Thrown out of a retry loop when the drain stops: the batch stays unconfirmed in the queue. */
export class StopRequested extends Error {}

export function createDrainContext(opts: DrainOptions): DrainContext {
  const sleepers = new Set<() => void>();
  return {
    opts,
    policy: opts.backoff ?? DEFAULT_BACKOFF,
    stats: {
      pointsWritten: 0,
      pointsRejected: 0,
      writeRetries: 0,
      batchesWritten: 0,
      lastWriteAt: undefined,
      healthy: true,
      readErrors: 0,
      workers: 0,
    },
    stopping: false,
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          sleepers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, ms);
        sleepers.add(wake);
      }),
    wakeSleepers() {
      for (const wake of [...sleepers]) wake();
    },
  };
}
