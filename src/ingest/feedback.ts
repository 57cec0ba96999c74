// The payload published on a device's `rejected` topic (DESIGN §3 "Rejection feedback"). It echoes
// only small values from the device's own message, back to that device alone.
import type { Rejection } from './record.js';

export interface FeedbackMessage {
  readonly receivedAt: string;
  readonly topic: string;
  readonly reason: Rejection['reason'];
  readonly errors: Rejection['errors'];
  readonly readingIndex?: number;
  readonly schema?: string;
}

export function toFeedback(topic: string, receivedAt: Date, r: Rejection): FeedbackMessage {
  return {
    receivedAt: receivedAt.toISOString(),
    topic,
    reason: r.reason,
    errors: r.errors,
    ...(r.readingIndex !== undefined ? { readingIndex: r.readingIndex } : {}),
    ...(r.schema ? { schema: r.schema } : {}),
  };
}
