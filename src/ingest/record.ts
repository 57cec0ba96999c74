// The values that flow through ingestion: the record a source hands in, the rejection a stage
// returns, and the verdict the pipeline gives back to the source.
import type { Identity } from '../registry/acl.js';
import type { InputRejectReason, RejectionError } from '../storage/rejects-log.js';

export type { RejectionError } from '../storage/rejects-log.js';

/**
 * A message a source could not attribute to a registered, enabled device (an external broker hands
 * in messages by topic, and the topic may name no such device): rejected with reason `topic`,
 * nothing stored, and no feedback, since no registered device is there to read it.
 */
export interface Unattributed {
  readonly kind: 'unattributed';
  /** The device id the topic names, or '' when the topic has no such segment. */
  readonly id: string;
  /** Why, for the rejects log: "no device ox-9 in the registry". */
  readonly reason: string;
}

export interface IngestRecord {
  readonly topic: string;
  readonly payload: Buffer;
  /** The authenticated client the message came from, or why the source could not tell. */
  readonly identity: Identity | Unattributed;
  readonly clientId: string;
  readonly receivedAt: Date;
}

/** The reasons ingestion gives; the rejects log adds `database` for the drain's refusals. */
export type RejectReason = InputRejectReason;

/** Bad device input is a value, never an exception. */
export interface Rejection {
  readonly reason: RejectReason;
  readonly errors: readonly RejectionError[];
  /** Index within `{"readings": [...]}`; 0 for a single reading; absent when the whole message failed. */
  readonly readingIndex?: number;
  /** `pulse-oximeter@1`, when a schema was involved. */
  readonly schema?: string;
}

export interface Verdict {
  /** Readings accepted and handed to the sink. */
  readonly accepted: number;
  readonly rejections: readonly Rejection[];
  /** False for messages that carry no readings (status). */
  readonly ingested: boolean;
}

export const rejection = (
  reason: RejectReason,
  message: string,
  extra: { path?: string; value?: unknown; readingIndex?: number; schema?: string } = {},
): Rejection => ({
  reason,
  errors: [{ path: extra.path ?? '', message, ...('value' in extra ? { value: extra.value } : {}) }],
  ...(extra.readingIndex !== undefined ? { readingIndex: extra.readingIndex } : {}),
  ...(extra.schema ? { schema: extra.schema } : {}),
});
