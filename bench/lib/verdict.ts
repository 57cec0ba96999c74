// Whether a rung of the e2e ladder passed, and why not: the zero-loss rule of issue #7, the same
// for every system, plus the spool rules for the gateway and a queue bound for a broker in front of it.
import { fmt } from './report.js';

export interface SpoolSample {
  /** Seconds since the measured window started. */
  t: number;
  /** Age of the oldest reading not yet in InfluxDB, s. */
  seconds: number;
  /** Unwritten bytes. */
  bytes: number;
}

export interface RungOutcome {
  /** Readings per second reached by the publishers / the rung's rate. */
  achievedShare: number;
  notAcknowledged: number;
  disconnects: number;
  /** Time from the last publish to the last PUBACK, ms. */
  ackTailMs: number;
  /** Acknowledged readings (probe included) and points counted in InfluxDB afterwards. */
  expected: number;
  stored: number;
  /** Latency-probe readings never queryable within the probe's timeout. */
  probesMissing: number;
  /** Gateway only: the spool sampled once a second over the window. */
  spool?: { samples: SpoolSample[]; windowSeconds: number };
  /**
   * A broker in front of the gateways (issue 19) only: the probe's publish-to-queryable p99, ms.
   * What waits in the broker's queues is in no gateway's spool, so a backlog there shows only here.
   */
  frontQueryableP99Ms?: number;
}

const MIB = 2 ** 20;

/** Empty when the rung passed; otherwise one reason per broken rule, for a lab technician to read. */
export function rungFailures(o: RungOutcome): string[] {
  const why: string[] = [];
  if (o.achievedShare < 0.97)
    why.push(`publishers reached only ${Math.round(o.achievedShare * 100)} % of the rate`);
  if (o.notAcknowledged > 0) why.push(`${o.notAcknowledged} messages not acknowledged`);
  if (o.disconnects > 0) why.push(`${o.disconnects} disconnects`);
  if (o.ackTailMs > 5000) why.push(`last PUBACK ${Math.round(o.ackTailMs)} ms after the last publish`);
  if (o.stored < o.expected) why.push(`${o.expected - o.stored} acknowledged readings missing in InfluxDB`);
  if (o.stored > o.expected) why.push(`${o.stored - o.expected} more points than acknowledged readings`);
  if (o.probesMissing > 0)
    why.push(`${o.probesMissing} probe readings not queryable within 30 s of their publish`);
  if (o.spool) why.push(...spoolFailures(o.spool.samples, o.spool.windowSeconds));
  // The spool's own bound (no reading waits more than 10 s), applied where the queue is the broker's.
  if (o.frontQueryableP99Ms !== undefined && o.frontQueryableP99Ms > 10_000)
    why.push(
      `readings waiting at the broker in front: queryable p99 ${fmt(o.frontQueryableP99Ms / 1000, 1)} s (over 10 s)`,
    );
  return why;
}

/** The oldest unwritten reading's age over the last third of the window (the backlog reported). */
export function lastThird(samples: SpoolSample[], windowSeconds: number): SpoolSample[] {
  return samples.filter((s) => s.t >= windowSeconds * (2 / 3));
}

/**
 * The spool may not grow: over the last third of the window its unwritten bytes do not rise by
 * more than 1 MiB while its oldest reading is more than 5 s old, and no reading waits more than
 * 10 s. Bytes alone can look flat while the drain falls behind (samples bunched by a busy event
 * loop, a batch stuck in flight), hence the age; and a gateway too busy to answer /metrics cannot
 * show that its spool is not growing, hence the sample count (fewer asked of windows under 9 s).
 */
function spoolFailures(samples: SpoolSample[], windowSeconds: number): string[] {
  const why: string[] = [];
  const third = lastThird(samples, windowSeconds);
  const needed = Math.min(3, Math.floor(windowSeconds / 3));
  if (third.length < needed)
    why.push(`spool not observed: ${third.length} samples in the last third of the window`);
  const first = third[0];
  const last = third[third.length - 1];
  if (first && last && last.bytes > first.bytes + MIB && last.seconds > 5)
    why.push(
      `spool growing: ${fmt(first.bytes / MIB, 1)} → ${fmt(last.bytes / MIB, 1)} MiB unwritten, oldest ${fmt(last.seconds, 1)} s`,
    );
  const oldest = Math.max(0, ...third.map((s) => s.seconds));
  if (oldest > 10) why.push(`spool falling behind: oldest unwritten reading ${fmt(oldest, 1)} s old`);
  return why;
}
