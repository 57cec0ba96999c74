// The read side: a cursor through the segments, the records handed out but not yet confirmed, and
// the one open read handle. It hands out only whole records below each segment's counted size, in
// order, and moves the cursor only past records it hands out; it never deletes anything.
import { GatewayError } from '../../errors.js';
import type { Position, QueuedRecord } from '../queue.js';
import { errText, type OpenFile, type Segment, type SpoolFile } from './files.js';
import type { Ledger } from './ledger.js';
import { decodeRecords, HEADER, payloadLengthAt } from './record.js';

interface HandedOut {
  position: Position;
  appendedAt: number;
  size: number;
}

export interface Reader {
  read(maxBytes: number): Promise<QueuedRecord[]>;
  /** Forgets handed-out records up to `position`, and their bytes in the ledger. */
  confirmUpTo(position: Position): void;
  /** Closes the read handle if it is on segment `id` (before that segment is deleted). */
  release(id: number): Promise<void>;
  close(): Promise<void>;
  cursor: Position;
  /** appendedAt of the oldest record handed out and not confirmed. */
  readonly oldestHandedOutAt: number | undefined;
  readonly handedOutRecords: number;
}

interface ReadState {
  ledger: Ledger;
  openFile: OpenFile;
  cursor: Position;
  handedOut: HandedOut[];
  handle: { id: number; file: SpoolFile } | undefined;
}

/** The segment the cursor stands in or the next one after it, the cursor moved to a readable spot. */
function nextReadable(st: ReadState): Segment | undefined {
  const { segments } = st.ledger;
  for (;;) {
    const seg =
      segments.find((s) => s.id === st.cursor.segment) ?? segments.find((s) => s.id > st.cursor.segment);
    if (!seg) return undefined;
    if (seg.id !== st.cursor.segment) st.cursor = { segment: seg.id, offset: 0 };
    if (st.cursor.offset < seg.size) return seg;
    const next = segments.find((s) => s.id > seg.id);
    if (!next) return undefined;
    st.cursor = { segment: next.id, offset: 0 };
  }
}

async function handleFor(st: ReadState, seg: Segment): Promise<SpoolFile> {
  if (st.handle?.id !== seg.id) {
    const old = st.handle;
    st.handle = undefined;
    await old?.file.close();
    st.handle = { id: seg.id, file: await st.openFile(seg.path, 'r') };
  }
  return st.handle.file;
}

// Reads chunk by chunk into `out`, moving the cursor past each chunk as it is handed out.
async function readInto(st: ReadState, out: QueuedRecord[], maxBytes: number) {
  let budget = maxBytes;
  while (budget > 0) {
    const seg = nextReadable(st);
    if (!seg) break;
    const file = await handleFor(st, seg);
    const at = st.cursor.offset;
    const want = Math.min(seg.size - at, Math.max(budget, HEADER));
    let buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await file.read(buf, 0, want, at);
    buf = buf.subarray(0, bytesRead);
    let decoded = decodeRecords(buf, seg.id, at);
    if (decoded.records.length === 0 && buf.length >= HEADER) {
      // One record larger than the budget: read exactly that record.
      const whole = Buffer.allocUnsafe(HEADER + payloadLengthAt(buf, 0));
      await file.read(whole, 0, whole.length, at);
      decoded = decodeRecords(whole, seg.id, at);
    }
    if (decoded.records.length === 0) break;
    for (const r of decoded.records) {
      out.push(r);
      st.handedOut.push({ position: r.position, appendedAt: r.appendedAt, size: r.payload.length + HEADER });
    }
    st.ledger.unreadRecords -= decoded.records.length;
    st.cursor = (decoded.records[decoded.records.length - 1] as QueuedRecord).position;
    budget -= decoded.end;
    if (st.ledger.unreadRecords === 0) st.ledger.firstUnreadAt = undefined;
  }
}

async function read(st: ReadState, maxBytes: number): Promise<QueuedRecord[]> {
  const out: QueuedRecord[] = [];
  try {
    await readInto(st, out, maxBytes);
  } catch (err) {
    // The handle may be what failed: the next read opens the segment again.
    const old = st.handle;
    st.handle = undefined;
    await old?.file.close().catch(() => undefined);
    // The cursor already stands past what `out` holds: dropping it here would leave those
    // records counted as read but never written, and the next confirm would cover them.
    if (out.length > 0) return out;
    throw new GatewayError(
      'LL_SPOOL_READ_FAILED',
      `could not read spool segment ${st.cursor.segment} (${errText(err)}): the readings stay in the spool and are read again`,
      { cause: err },
    );
  }
  return out;
}

function confirmUpTo(st: ReadState, position: Position) {
  while (st.handedOut.length > 0) {
    const head = st.handedOut[0] as HandedOut;
    if (head.position.segment > position.segment) break;
    if (head.position.segment === position.segment && head.position.offset > position.offset) break;
    st.ledger.unconfirmedBytes -= (st.handedOut.shift() as HandedOut).size;
  }
}

async function release(st: ReadState, id: number) {
  if (st.handle?.id !== id) return;
  const file = st.handle.file;
  st.handle = undefined;
  await file.close().catch(() => undefined);
}

export function createReader(ledger: Ledger, openFile: OpenFile): Reader {
  const st: ReadState = {
    ledger,
    openFile,
    cursor: { segment: 0, offset: 0 },
    handedOut: [],
    handle: undefined,
  };
  return {
    read: (maxBytes) => read(st, maxBytes),
    confirmUpTo: (position) => confirmUpTo(st, position),
    release: (id) => release(st, id),
    async close() {
      await st.handle?.file.close();
      st.handle = undefined;
    },
    get cursor() {
      return st.cursor;
    },
    set cursor(position) {
      st.cursor = position;
    },
    get oldestHandedOutAt() {
      return st.handedOut[0]?.appendedAt;
    },
    get handedOutRecords() {
      return st.handedOut.length;
    },
  };
}
