// Back-pressure: the size limit applies to unconfirmed bytes. An append that does not fit waits, in
// arrival order, until confirms free room; only when the waiting bytes themselves pass their bound
// (memory) is an append refused, with SpoolFullError. Nothing admitted is ever dropped here.
import type { Logger } from '../../log.js';
import type { GroupCommit, Pending } from './group-commit.js';
import type { Ledger } from './ledger.js';

export class SpoolFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

export interface BackPressure {
  /** Admits the record to the group commit now, makes it wait for room, or rejects it. */
  admit(p: Pending): void;
  /** Lets waiting records in, in order, as far as the room freed by confirms allows. */
  admitWaiting(): void;
  /** Rejects every waiting record with a SpoolFullError (stop). */
  rejectWaiting(message: string): void;
  /** True while appends wait for room. */
  readonly full: boolean;
}

interface Limits {
  maxBytes: number;
  maxWaitingBytes: number;
}

interface WaitState {
  waiting: Pending[];
  waitingBytes: number;
  full: boolean;
}

function setFull(st: WaitState, value: boolean, ledger: Ledger, limits: Limits, log: Logger) {
  if (value === st.full) return;
  st.full = value;
  const detail = { bytes: ledger.unconfirmedBytes, limit: limits.maxBytes };
  if (st.full) log.warn(detail, 'spool full: acknowledgements paused until InfluxDB catches up');
  else log.info(detail, 'spool has room again: acknowledging');
}

export function createBackPressure(
  ledger: Ledger,
  commit: GroupCommit,
  limits: Limits,
  log: Logger,
): BackPressure {
  const st: WaitState = { waiting: [], waitingBytes: 0, full: false };
  return {
    admit(p) {
      const { maxBytes, maxWaitingBytes } = limits;
      if (st.waiting.length === 0 && ledger.unconfirmedBytes + p.buf.length <= maxBytes)
        return commit.enqueue(p);
      if (st.waitingBytes + p.buf.length > maxWaitingBytes) {
        return p.reject(
          new SpoolFullError(
            `spool is full (${ledger.unconfirmedBytes} of ${maxBytes} bytes) and ${st.waitingBytes} bytes are waiting`,
          ),
        );
      }
      st.waiting.push(p);
      st.waitingBytes += p.buf.length;
      setFull(st, true, ledger, limits, log);
    },
    admitWaiting() {
      while (st.waiting.length > 0) {
        const next = st.waiting[0] as Pending;
        if (ledger.unconfirmedBytes + next.buf.length > limits.maxBytes) break;
        st.waiting.shift();
        st.waitingBytes -= next.buf.length;
        commit.enqueue(next);
      }
      setFull(st, st.waiting.length > 0, ledger, limits, log);
    },
    rejectWaiting(message) {
      for (const w of st.waiting.splice(0)) w.reject(new SpoolFullError(message));
      st.waitingBytes = 0;
    },
    get full() {
      return st.full;
    },
  };
}
