// What the parts of the spool share: the segments on disk and the counts the limit and the stats
// are made of. Plain data; each field names the one part that moves it forward.
import type { Segment } from './files.js';

export interface Ledger {
  /** Oldest first; the last one is the segment appends go to (never deleted while running). */
  readonly segments: Segment[];
  /** Bytes on disk in all segments, confirmed or not (commit adds, confirm's delete subtracts). */
  diskBytes: number;
  /** Bytes of records not yet confirmed, headers included; reserved when an append is admitted. */
  unconfirmedBytes: number;
  /** Committed records the reader has not handed out yet. */
  unreadRecords: number;
  /** appendedAt of the oldest of those, while there are any. */
  firstUnreadAt: number | undefined;
}

export const createLedger = (): Ledger => ({
  segments: [],
  diskBytes: 0,
  unconfirmedBytes: 0,
  unreadRecords: 0,
  firstUnreadAt: undefined,
});

export const lastSegment = (ledger: Ledger) => ledger.segments[ledger.segments.length - 1] as Segment;
