// What the drain reads from: the durable spool, or (for measurements only) a memory queue. Both
// hand out records in append order and forget them only when confirmed.

export interface Position {
  readonly segment: number;
  /** Byte offset just past the record within its segment. */
  readonly offset: number;
}

export interface QueuedRecord {
  readonly position: Position;
  /** When the record was appended (ms since the epoch). */
  readonly appendedAt: number;
  /** Line protocol, lines separated by "\n". */
  readonly payload: Buffer;
}

export interface RecordQueue {
  /** Appends one record per payload; resolves when they are as safe as the queue makes them. */
  append(payloads: readonly Buffer[]): Promise<void>;
  /** Up to `maxBytes` of records after the last one read (at least one record if any is there). */
  read(maxBytes: number): Promise<QueuedRecord[]>;
  /** Everything up to and including `position` is in the database. */
  confirm(position: Position): Promise<void>;
  /** Resolves when a record is appended, or after `timeoutMs`. */
  waitForData(timeoutMs: number): Promise<void>;
  readonly stats: QueueStats;
}

export interface QueueStats {
  /** Bytes of records not yet confirmed; the size limit applies to these. */
  readonly bytes: number;
  /** Bytes on disk, including confirmed records whose segment is not deleted yet. */
  readonly diskBytes: number;
  readonly limitBytes: number;
  /** Records appended but not yet confirmed. */
  readonly unconfirmedRecords: number;
  /** appendedAt of the oldest unconfirmed record, if any. */
  readonly oldestUnconfirmedAt: number | undefined;
  /** True while appends wait for space (back-pressure). */
  readonly full: boolean;
  /** Why appends are refused (the disk failed and the spool could not make itself whole), if they are. */
  readonly appendError: string | undefined;
  /** Appends that failed on a disk error (not counting those refused while `appendError` is set). */
  readonly writeErrors: number;
}
