// Group commit: every append admitted while a write is on its way goes into the next single write,
// so a busy gateway pays one disk flush per batch, not per reading. An append resolves only after
// its bytes are counted in the segment (on stable storage); one that fails is rejected and its
// reserved bytes are given back. Admission (the size limit) is back-pressure.ts's, not this part's.
import type { Appender } from './appender.js';
import type { Ledger } from './ledger.js';
import { appendedAtOf } from './record.js';

export interface Pending {
  /** The encoded record. */
  buf: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface GroupCommit {
  /** Reserves the record's bytes and queues it for the next write. */
  enqueue(p: Pending): void;
  /** Resolves when the write under way (if any) and all queued after it are done. */
  settled(): Promise<void>;
}

interface CommitState {
  pending: Pending[];
  running: boolean;
  committing: Promise<void> | undefined;
}

async function writeBatch(appender: Appender, ledger: Ledger, batch: Pending[]) {
  const bufs = batch.map((p) => p.buf);
  const bytes = bufs.reduce((n, b) => n + b.length, 0);
  // One buffer, one write: with O_DSYNC each write syscall is a disk flush of its own.
  const data = bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs, bytes);
  // [docs/architecture.md, Data path] a rejected append is never acknowledged: the device keeps
  // and resends it.
  await appender.write(data);
  ledger.diskBytes += bytes;
  if (ledger.unreadRecords === 0) ledger.firstUnreadAt = appendedAtOf(bufs[0] as Buffer);
  ledger.unreadRecords += batch.length;
}

// The loop's exit and the flag's reset happen in the same tick: an append arriving after the last
// check of `pending` always finds the flag down and starts a new commit (it is never stranded).
async function commit(st: CommitState, appender: Appender, ledger: Ledger, wake: () => void): Promise<void> {
  while (st.pending.length > 0) {
    const batch = st.pending;
    st.pending = [];
    try {
      await writeBatch(appender, ledger, batch);
    } catch (err) {
      for (const p of batch) {
        ledger.unconfirmedBytes -= p.buf.length;
        p.reject(err as Error);
      }
      continue;
    }
    for (const p of batch) p.resolve();
    wake();
  }
  st.running = false;
}

export function createGroupCommit(appender: Appender, ledger: Ledger, wake: () => void): GroupCommit {
  const st: CommitState = { pending: [], running: false, committing: undefined };
  return {
    enqueue(p) {
      // Reserved now, not at commit, so concurrent appends cannot overshoot the limit together.
      ledger.unconfirmedBytes += p.buf.length;
      st.pending.push(p);
      if (!st.running) {
        st.running = true;
        st.committing = commit(st, appender, ledger, wake);
      }
    },
    settled: async () => {
      await st.committing;
    },
  };
}
