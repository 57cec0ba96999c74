// What the drain reads from: the durable spool, or (for measurements only) a memory queue. Both
// hand out records in append order and forget them only when confirmed.
//
// Words, one per thing (identifiers, log fields, comments and docs use these):
// - record queue (`RecordQueue`, a variable named `queue`): what the pipeline appends to and the
//   drain reads from. Two kinds: the spool (storage/spool/, the on-disk write-ahead log, default)
//   and the memory queue (`--no-spool`, measurements only). "Spool" names the on-disk one only,
//   except in interfaces kept for their users: the `livinglab_spool_*` metrics, the `spool` object
//   of `livinglab status` and /status, and the `spool.*` options describe whichever queue runs.
// - unconfirmed: appended and not yet confirmed by the drain, i.e. not yet in the database or the
//   rejects log. Of these, handed out = read by the drain, unread = not read yet. The older word
//   "unwritten" survives only in interfaces, meaning unconfirmed: `unwrittenRecords` and
//   `oldestUnwrittenSeconds` in the status JSON, `livinglab_spool_oldest_unwritten_seconds`.
// - in-flight: sent and not yet answered, MQTT's sense: a device's message awaiting its PUBACK
//   (the pipeline's in-flight accepts, until the spool commit), a write awaiting InfluxDB's reply.
// - channels (registry/topics.ts owns them): DeviceChannel, what a device publishes on (telemetry |
//   event | status); ReadingChannel, the two of those that carry readings (the ones a schema names);
//   TopicChannel, every last segment of a device topic (DeviceChannel and rejected).

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
