// The payload published on a device's `rejected` topic (docs/architecture.md, Rejects and
// feedback), and the
// per-device budget that decides whether it is sent at all. It echoes only small values from the
// device's own message, back to that device alone. Never more than one feedback message per
// incoming message, never queued for a connection that is backed up (docs/architecture.md,
// Pitfalls: a backlog of
// per-reading feedback to a non-reading device once crashed the broker).
//
// Shape: the documented fields describe the first rejection, so a message with one rejection is
// exactly the documented one. A message with several rejections (a batch) adds
//   rejectionCount     how many readings (or problems) were rejected in all,
//   rejections         the first MAX_FEEDBACK_REJECTIONS of them: {reason, errors, readingIndex},
//                      each error list cut to MAX_FEEDBACK_ERRORS (errorsOmitted says how many more),
//   rejectionsOmitted  how many rejections are not listed.
// Whatever the rejections, one message stays under MAX_FEEDBACK_BYTES: fewer rejections are listed,
// then fewer errors of the first (top-level `errorsOmitted`), until it fits. A socket takes a
// message that small without passing its high-water mark, so feedback never makes the broker wait.
import type { Rejection, RejectionError } from './record.js';

export const MAX_FEEDBACK_REJECTIONS = 20;
export const MAX_FEEDBACK_ERRORS = 5;
/** Bytes of one feedback message at most (JSON), well under a socket's 16 KiB high-water mark. */
export const MAX_FEEDBACK_BYTES = 8 * 1024;

export interface FeedbackEntry {
  readonly reason: Rejection['reason'];
  readonly errors: readonly RejectionError[];
  readonly errorsOmitted?: number;
  readonly readingIndex?: number;
}

export interface FeedbackMessage {
  readonly receivedAt: string;
  readonly topic: string;
  readonly reason: Rejection['reason'];
  readonly errors: Rejection['errors'];
  readonly errorsOmitted?: number;
  readonly readingIndex?: number;
  readonly schema?: string;
  readonly rejectionCount?: number;
  readonly rejections?: readonly FeedbackEntry[];
  readonly rejectionsOmitted?: number;
}

/** One rejection, its error list cut to `maxErrors` (the count of the rest kept). */
export function capRejection(r: Rejection, maxErrors: number): FeedbackEntry {
  const omitted = r.errors.length - maxErrors;
  return {
    reason: r.reason,
    errors: omitted > 0 ? r.errors.slice(0, maxErrors) : r.errors,
    ...(omitted > 0 ? { errorsOmitted: omitted } : {}),
    ...(r.readingIndex !== undefined ? { readingIndex: r.readingIndex } : {}),
  };
}

/** The one feedback message for all rejections of one incoming message (at least one). */
export function toFeedback(
  topic: string,
  receivedAt: Date,
  rejections: readonly Rejection[],
): FeedbackMessage {
  const first = rejections[0];
  if (!first) throw new RangeError('toFeedback needs at least one rejection');
  let errors = first.errors.length;
  let listed = rejections.length === 1 ? 0 : Math.min(rejections.length, MAX_FEEDBACK_REJECTIONS);
  for (;;) {
    const msg = buildFeedback(topic, receivedAt, rejections, errors, listed);
    if (Buffer.byteLength(JSON.stringify(msg)) <= MAX_FEEDBACK_BYTES) return msg;
    if (listed > 1) listed = Math.floor(listed / 2);
    else if (errors > 1) errors = Math.floor(errors / 2);
    // Topic and one error are bounded (topic segments, validate's path and value caps).
    else return msg;
  }
}

function buildFeedback(
  topic: string,
  receivedAt: Date,
  rejections: readonly Rejection[],
  errors: number,
  listed: number,
): FeedbackMessage {
  const first = rejections[0] as Rejection;
  const base: FeedbackMessage = {
    receivedAt: receivedAt.toISOString(),
    topic,
    reason: first.reason,
    errors: errors < first.errors.length ? first.errors.slice(0, errors) : first.errors,
    ...(errors < first.errors.length ? { errorsOmitted: first.errors.length - errors } : {}),
    ...(first.readingIndex !== undefined ? { readingIndex: first.readingIndex } : {}),
    ...(first.schema ? { schema: first.schema } : {}),
  };
  if (rejections.length === 1) return base;
  return {
    ...base,
    rejectionCount: rejections.length,
    rejections: rejections.slice(0, listed).map((r) => capRejection(r, MAX_FEEDBACK_ERRORS)),
    rejectionsOmitted: rejections.length - listed,
  };
}

export type FeedbackDropReason = 'rate' | 'backlog';

export interface FeedbackBudget {
  readonly stats: { sent: number; dropped: Record<FeedbackDropReason, number> };
  /**
   * Decides whether one feedback message may go to `deviceId` now: takes a token from the device's
   * bucket and checks that its connection is not backed up. A refusal is counted here.
   */
  take(deviceId: string): boolean;
}

export interface FeedbackBudgetOptions {
  /** Feedback messages per minute each device earns. */
  readonly perMinute: number;
  /** Most messages a device can receive in a burst (the bucket's size). */
  readonly burst: number;
  /** True while the device's connection has more unsent bytes than the broker allows. */
  readonly isBackedUp: (deviceId: string) => boolean;
  readonly now?: () => number;
}

/** A token bucket per device; its map holds registered devices only (ids come from the registry). */
export function createFeedbackBudget(opts: FeedbackBudgetOptions): FeedbackBudget {
  const now = opts.now ?? Date.now;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const stats: FeedbackBudget['stats'] = { sent: 0, dropped: { rate: 0, backlog: 0 } };
  return {
    stats,
    take(deviceId) {
      if (opts.isBackedUp(deviceId)) {
        stats.dropped.backlog++;
        return false;
      }
      const t = now();
      const b = buckets.get(deviceId) ?? { tokens: opts.burst, at: t };
      b.tokens = Math.min(opts.burst, b.tokens + ((t - b.at) / 60_000) * opts.perMinute);
      b.at = t;
      buckets.set(deviceId, b);
      if (b.tokens < 1) {
        stats.dropped.rate++;
        return false;
      }
      b.tokens--;
      stats.sent++;
      return true;
    },
  };
}
