// Output order of an export: by time, then by pseudonym, then by the row's own values. Never by a
// participant code or a device id, whose order would let exports of two projects be matched block by
// block (issue 13, item 5). Merges one time-ordered stream per subject with a heap, so memory holds
// one batch per subject (plus the one read ahead, and rows sharing one timestamp), however long the
// export. Rows travel in batches (one InfluxDB chunk each), not one by one: every `await` of an
// async generator costs a few microtasks, and per row and per layer that was most of an export's
// time (issue 18, measured in BENCHMARKS.md).
import type { ReadingRow } from './readings.js';

/** Rows in order, a batch at a time; a batch is never empty. */
export type RowBatches = AsyncIterable<ReadingRow[]>;

/** Total order on rows: time (ISO strings of one width compare as times), pseudonym, then values. */
export function compareRows(a: ReadingRow, b: ReadingRow): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.subject !== b.subject) return a.subject < b.subject ? -1 : 1;
  const ka = JSON.stringify(a);
  const kb = JSON.stringify(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Sorts, in place, each run of rows with one time in rows[from..to). */
function sortRuns(rows: ReadingRow[], from: number, to: number): void {
  let start = from;
  for (let i = from + 1; i <= to; i++) {
    if (i < to && (rows[i] as ReadingRow).time === (rows[start] as ReadingRow).time) continue;
    if (i - start > 1) {
      const run = rows.slice(start, i).sort(compareRows);
      for (let j = 0; j < run.length; j++) rows[start + j] = run[j] as ReadingRow;
    }
    start = i;
  }
}

/**
 * Rows of one stream (ordered by time) with rows of equal time put in value order: InfluxDB gives
 * those in series-key order, which is device-id order. The rows of a batch's last time are held
 * back until the next batch, which may carry more of them.
 */
export async function* sortTies(batches: RowBatches): AsyncGenerator<ReadingRow[]> {
  let carry: ReadingRow[] = [];
  for await (const batch of batches) {
    if (batch.length === 0) continue;
    const rows = carry.length > 0 ? carry.concat(batch) : batch;
    const last = (rows[rows.length - 1] as ReadingRow).time;
    let cut = rows.length;
    while (cut > 0 && (rows[cut - 1] as ReadingRow).time === last) cut--;
    carry = rows.slice(cut);
    if (cut === 0) continue;
    rows.length = cut;
    sortRuns(rows, 0, cut);
    yield rows;
  }
  if (carry.length === 0) return;
  sortRuns(carry, 0, carry.length);
  yield carry;
}

/**
 * One stream in the merge: its current batch, the next row in it (`head`, kept at hand: the heap
 * compares heads several times per row), and the next batch asked for.
 */
interface Cursor {
  batch: ReadingRow[];
  i: number;
  head: ReadingRow;
  readonly it: AsyncIterator<ReadingRow[]>;
  ahead: Promise<IteratorResult<ReadingRow[]>> | undefined;
}

/** compareRows(a, b) < 0, deciding on the time alone when the times differ (almost always). */
const before = (a: ReadingRow, b: ReadingRow) =>
  a.time !== b.time ? a.time < b.time : compareRows(a, b) < 0;
/** compareRows(a, b) <= 0, likewise. */
const notAfter = (a: ReadingRow, b: ReadingRow) =>
  a.time !== b.time ? a.time < b.time : compareRows(a, b) <= 0;

/**
 * Asks for a stream's next batch while its current one is merged, so its InfluxDB chunk is parsed
 * while the others are read; the merge then waits less on its slowest stream. A failure is seen
 * when the batch is taken (a handler is attached here so an abandoned read-ahead cannot crash).
 */
function readAhead(c: Cursor): void {
  const p = c.it.next();
  p.catch(() => undefined);
  c.ahead = p;
}

/** A binary min-heap of cursors, ordered by their head rows. */
class CursorHeap {
  readonly items: Cursor[] = [];
  private less(i: number, j: number): boolean {
    return before((this.items[i] as Cursor).head, (this.items[j] as Cursor).head);
  }
  private swap(i: number, j: number): void {
    const a = this.items;
    const t = a[i] as Cursor;
    a[i] = a[j] as Cursor;
    a[j] = t;
  }
  push(c: Cursor): void {
    this.items.push(c);
    let i = this.items.length - 1;
    while (i > 0 && this.less(i, (i - 1) >> 1)) {
      this.swap(i, (i - 1) >> 1);
      i = (i - 1) >> 1;
    }
  }
  /** Restores the order after the top's head moved on. */
  siftDown(): void {
    const n = this.items.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const c = l + 1 < n && this.less(l + 1, l) ? l + 1 : l;
      if (!this.less(c, i)) return;
      this.swap(c, i);
      i = c;
    }
  }
  removeTop(): void {
    const last = this.items.pop() as Cursor;
    if (this.items.length === 0) return;
    this.items[0] = last;
    this.siftDown();
  }
  /** The smallest head after the top's: the top's rows up to it can go out as they are. */
  second(): ReadingRow | undefined {
    const a = this.items;
    if (a.length < 2) return undefined;
    if (a.length === 2) return (a[1] as Cursor).head;
    return this.less(2, 1) ? (a[2] as Cursor).head : (a[1] as Cursor).head;
  }
}

/**
 * Export text (CSV, NDJSON, JSON, FHIR) handed to the response at a time, in UTF-16 units: large
 * enough that a write's cost is spread over hundreds of rows, small enough that the next piece is
 * made while this one is sent (a whole 5,000-row FHIR batch, 9 MB, left the connection idle while
 * it was encoded, and doubled the gateway's peak RSS).
 */
export const TEXT_PIECE = 256 * 1024;

/** Rows merged into one output batch before it is handed on. */
export const MERGED_BATCH_ROWS = 5000;

/**
 * Moves the top cursor's rows that come before every other head into `out`: the whole rest of its
 * batch when its last row does (one stream ahead of the others), else row by row.
 */
function takeRun(heap: CursorHeap, out: ReadingRow[]): void {
  const c = heap.items[0] as Cursor;
  const bound = heap.second();
  const { batch } = c;
  if (bound === undefined || notAfter(batch[batch.length - 1] as ReadingRow, bound)) {
    for (let i = c.i; i < batch.length; i++) out.push(batch[i] as ReadingRow);
    c.i = batch.length;
    return;
  }
  let i = c.i;
  do out.push(batch[i++] as ReadingRow);
  while (i < batch.length && notAfter(batch[i] as ReadingRow, bound));
  c.i = i;
  c.head = batch[i] as ReadingRow;
}

/** The top cursor's batch is used up: takes its next one, or drops the stream at its end. */
async function refill(heap: CursorHeap): Promise<void> {
  const c = heap.items[0] as Cursor;
  for (;;) {
    const next = await (c.ahead ?? c.it.next());
    c.ahead = undefined;
    if (next.done) return heap.removeTop();
    if (next.value.length === 0) continue;
    c.batch = next.value;
    c.i = 0;
    c.head = next.value[0] as ReadingRow;
    readAhead(c);
    return heap.siftDown();
  }
}

/**
 * Merges streams that are each ordered by compareRows into one stream ordered the same way, in
 * batches of about MERGED_BATCH_ROWS. All streams are opened at once (the first batch of every one
 * is read before anything comes out); every stream is closed when the merge ends, fails or is
 * abandoned.
 */
export async function* mergeRows(streams: readonly RowBatches[]): AsyncGenerator<ReadingRow[]> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  const heap = new CursorHeap();
  try {
    const firsts = await Promise.all(its.map((it) => it.next()));
    firsts.forEach((r, k) => {
      if (r.done) return;
      const c: Cursor = {
        batch: r.value,
        i: 0,
        head: r.value[0] as ReadingRow,
        it: its[k] as AsyncIterator<ReadingRow[]>,
        ahead: undefined,
      };
      if (r.value.length === 0) c.ahead = c.it.next();
      else readAhead(c);
      heap.items.push(c);
    });
    // Cursors that started without a row are filled before the heap is ordered.
    for (const c of [...heap.items].filter((x) => x.batch.length === 0)) await fillFirst(heap, c);
    heap.items.sort((a, b) => compareRows(a.head, b.head));
    let out: ReadingRow[] = [];
    while (heap.items.length > 0) {
      takeRun(heap, out);
      const top = heap.items[0] as Cursor;
      if (top.i === top.batch.length) await refill(heap);
      else heap.siftDown();
      if (out.length >= MERGED_BATCH_ROWS) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    // Closing a stream cancels its InfluxDB response; a stream that failed is closed already.
    await Promise.allSettled(its.map((it) => it.return?.()));
  }
}

/** A stream whose first batch was empty: reads on to its first row, or drops it. */
async function fillFirst(heap: CursorHeap, c: Cursor): Promise<void> {
  for (;;) {
    const next = await (c.ahead ?? c.it.next());
    c.ahead = undefined;
    if (!next.done && next.value.length === 0) continue;
    if (next.done) heap.items.splice(heap.items.indexOf(c), 1);
    else {
      c.batch = next.value;
      c.head = next.value[0] as ReadingRow;
      readAhead(c);
    }
    return;
  }
}
