// The contract between the path that produces points and a time-series database.

import type { Point } from './point.js';

export interface Writer {
  /** Reaches the database and creates what it needs (database, schema); throws GatewayError if it cannot. */
  start(): Promise<void>;
  /** Writes one batch; rejects with the database's error (the caller decides to retry). */
  write(points: readonly Point[]): Promise<void>;
  /** True when the database answers. */
  ping(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Where the pipeline hands mapped points. The seam for the spool: the in-memory batcher now, the
 * write-ahead log later. `append` resolves when the points are as safe as this sink makes them.
 */
export interface PointSink {
  append(points: readonly Point[]): Promise<void>;
  /** Writes everything buffered; resolves when the writer accepted it or the deadline passed. */
  flush(deadlineMs?: number): Promise<void>;
  readonly pending: number;
}
