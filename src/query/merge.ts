// Output order of an export: by time, then by pseudonym, then by the row's own values. Never by a
// participant code or a device id, whose order would let exports of two projects be matched block by
// block (issue 13, item 5). Merges one time-ordered stream per subject with a heap, so memory holds
// one row per subject (plus rows sharing one timestamp), however long the export.
import type { ReadingRow } from './readings.js';

/** Total order on rows: time (ISO strings of one width compare as times), pseudonym, then values. */
export function compareRows(a: ReadingRow, b: ReadingRow): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.subject !== b.subject) return a.subject < b.subject ? -1 : 1;
  const ka = JSON.stringify(a);
  const kb = JSON.stringify(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * Rows of one stream (ordered by time) with rows of equal time put in value order: InfluxDB gives
 * those in series-key order, which is device-id order.
 */
export async function* sortTies(rows: AsyncIterable<ReadingRow>): AsyncGenerator<ReadingRow> {
  // Rows are yielded one by one (not `yield*` over the array, which wraps each in another promise):
  // this runs once per exported row.
  let group: ReadingRow[] = [];
  for await (const row of rows) {
    if (group.length > 0 && (group[0] as ReadingRow).time !== row.time) {
      if (group.length > 1) group.sort(compareRows);
      for (const r of group) yield r;
      group = [];
    }
    group.push(row);
  }
  if (group.length > 1) group.sort(compareRows);
  for (const r of group) yield r;
}

interface Head {
  row: ReadingRow;
  it: AsyncIterator<ReadingRow>;
}

/** A binary min-heap of stream heads, ordered by compareRows. */
class HeadHeap {
  private readonly items: Head[] = [];
  get size(): number {
    return this.items.length;
  }
  push(h: Head): void {
    const a = this.items;
    a.push(h);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (compareRows((a[p] as Head).row, h.row) <= 0) break;
      a[i] = a[p] as Head;
      i = p;
    }
    a[i] = h;
  }
  pop(): Head | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && compareRows((a[r] as Head).row, (a[l] as Head).row) < 0 ? r : l;
      if (compareRows((a[c] as Head).row, last.row) >= 0) break;
      a[i] = a[c] as Head;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/**
 * Merges streams that are each ordered by compareRows into one stream ordered the same way. All
 * streams are opened at once; every stream is closed when the merge ends, fails or is abandoned.
 */
export async function* mergeRows(streams: readonly AsyncIterable<ReadingRow>[]): AsyncGenerator<ReadingRow> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  const heap = new HeadHeap();
  try {
    const firsts = await Promise.all(its.map((it) => it.next()));
    firsts.forEach((r, i) => {
      if (!r.done) heap.push({ row: r.value, it: its[i] as AsyncIterator<ReadingRow> });
    });
    while (heap.size > 0) {
      const head = heap.pop() as Head;
      yield head.row;
      const next = await head.it.next();
      if (!next.done) heap.push({ row: next.value, it: head.it });
    }
  } finally {
    // Closing a stream cancels its InfluxDB response; a stream that failed is closed already.
    await Promise.allSettled(its.map((it) => it.return?.()));
  }
}
