// Summaries used by every bench table: median and range over runs, percentiles within a run.

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  // Nearest-rank: the smallest value with at least p % of the samples at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0 };
  const mid = finite.length >> 1;
  const median =
    finite.length % 2 === 1
      ? (finite[mid] as number)
      : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
  return { median, min: finite[0] as number, max: finite[finite.length - 1] as number, runs: finite.length };
}

/**
 * Latencies in milliseconds as bucket counts: 0.1 ms buckets up to 100 ms, then 2 % wide buckets.
 * Fixed memory at any rate, and histograms from several publisher processes merge by addition.
 */
export class LatencyHistogram {
  static readonly LINEAR = 1000;
  static readonly GROWTH = 1.02;
  readonly counts: number[];
  private total = 0;
  private maxSeen = 0;

  constructor(counts?: readonly number[], max = 0) {
    this.counts = counts ? [...counts] : new Array(LatencyHistogram.LINEAR + 700).fill(0);
    this.total = this.counts.reduce((a, b) => a + b, 0);
    this.maxSeen = max;
  }

  private static bucket(ms: number): number {
    if (ms < 100) return Math.max(0, Math.floor(ms * 10));
    return Math.min(
      LatencyHistogram.LINEAR + 699,
      LatencyHistogram.LINEAR + Math.floor(Math.log(ms / 100) / Math.log(LatencyHistogram.GROWTH)),
    );
  }

  /** The upper edge of a bucket: a percentile read from here is never optimistic. */
  private static upper(i: number): number {
    if (i < LatencyHistogram.LINEAR) return (i + 1) / 10;
    return 100 * LatencyHistogram.GROWTH ** (i - LatencyHistogram.LINEAR + 1);
  }

  add(ms: number): void {
    const i = LatencyHistogram.bucket(ms);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.total++;
    if (ms > this.maxSeen) this.maxSeen = ms;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++)
      this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.total += other.count;
    if (other.max > this.maxSeen) this.maxSeen = other.max;
  }

  get count(): number {
    return this.total;
  }

  get max(): number {
    return this.maxSeen;
  }

  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return Math.min(LatencyHistogram.upper(i), this.maxSeen);
    }
    return this.maxSeen;
  }

  toJSON(): { counts: number[]; max: number; count: number; p50: number; p99: number } {
    return {
      counts: this.counts,
      max: this.maxSeen,
      count: this.total,
      p50: this.percentile(50),
      p99: this.percentile(99),
    };
  }
}
