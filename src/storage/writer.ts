// The contract between the drain and a time-series database. A Writer sends line protocol and says
// what happened; it never retries and never drops: drain.ts alone decides what to do.
import type { Point } from './point.js';

export type WriteResult =
  | { readonly ok: true }
  /** Not the data's fault (network, 5xx, 429, auth): send the same lines again later. */
  | {
      readonly ok: false;
      readonly kind: 'retry';
      readonly message: string;
      readonly status?: number;
      readonly retryAfterMs?: number;
    }
  /** Some line is bad data (4xx): isolate it by splitting the batch. */
  | { readonly ok: false; readonly kind: 'bad-data'; readonly message: string; readonly status: number }
  /** The request body is too large: split the batch. */
  | { readonly ok: false; readonly kind: 'too-large'; readonly message: string; readonly status: number };

export interface Writer {
  /** A short name for logs and metrics: "influx-v1" or "influx-v2". */
  readonly name: string;
  /** Reaches the database and creates what it needs; throws GatewayError if it cannot. */
  start(): Promise<void>;
  /** Sends one batch of lines (no trailing newlines). Resolves a WriteResult; never rejects. */
  write(lines: readonly string[]): Promise<WriteResult>;
  /** True when the database answers. */
  ping(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Where the pipeline hands mapped points. `append` resolves when the points are as safe as this sink
 * makes them: on disk with fsync for the spool, in memory for the memory queue.
 */
export interface PointSink {
  append(points: readonly Point[]): Promise<void>;
}
