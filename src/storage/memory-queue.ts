// A RecordQueue in memory, for measuring what durability costs (`--no-spool`). Anything in it is
// lost on a crash or restart; the gateway says so at start-up. Never the default.
import type { Position, QueuedRecord, QueueStats, RecordQueue } from './queue.js';

export function createMemoryQueue(opts: { maxBytes: number }): RecordQueue {
  const records: QueuedRecord[] = [];
  let readIndex = 0;
  let bytes = 0;
  let seq = 0;
  const waiters: (() => void)[] = [];
  return {
    get stats(): QueueStats {
      return {
        bytes,
        diskBytes: 0,
        limitBytes: opts.maxBytes,
        unconfirmedRecords: records.length,
        oldestUnconfirmedAt: records[0]?.appendedAt,
        full: bytes >= opts.maxBytes,
        appendError: undefined,
        writeErrors: 0,
      };
    },
    async append(payloads) {
      const now = Date.now();
      for (const payload of payloads) {
        records.push({ position: { segment: 0, offset: ++seq }, appendedAt: now, payload });
        bytes += payload.length;
      }
      for (const w of waiters.splice(0)) w();
    },
    async read(maxBytes) {
      const out: QueuedRecord[] = [];
      let budget = maxBytes;
      while (readIndex < records.length && (out.length === 0 || budget > 0)) {
        const r = records[readIndex++] as QueuedRecord;
        out.push(r);
        budget -= r.payload.length;
      }
      return out;
    },
    async confirm(position: Position) {
      let n = 0;
      while (n < records.length && (records[n] as QueuedRecord).position.offset <= position.offset) {
        bytes -= (records[n] as QueuedRecord).payload.length;
        n++;
      }
      records.splice(0, n);
      readIndex -= n;
    },
    waitForData(timeoutMs) {
      if (readIndex < records.length) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
