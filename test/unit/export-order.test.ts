// The export order (issue 13, item 5): time, then pseudonym, then values; never the order the
// streams were given in (participant codes) nor InfluxDB's series order (device ids).
import { describe, expect, it } from 'vitest';
import { compareRows, MERGED_BATCH_ROWS, mergeRows, sortTies } from '../../src/query/merge.js';
import type { ReadingRow } from '../../src/query/readings.js';

const row = (s: number, subject: string, heartRate: number): ReadingRow => ({
  time: new Date(1_800_000_000_000 + s * 1000).toISOString(),
  subject,
  heartRate,
});
/** Rows as a stream of batches of `size` rows (InfluxDB chunks). */
async function* from(
  rows: ReadingRow[],
  closed?: string[],
  name?: string,
  size = 1,
): AsyncGenerator<ReadingRow[]> {
  try {
    for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
  } finally {
    if (closed && name) closed.push(name);
  }
}
const collect = async (it: AsyncIterable<ReadingRow[]>) => {
  const out: ReadingRow[] = [];
  for await (const batch of it) {
    expect(batch.length).toBeGreaterThan(0);
    out.push(...batch);
  }
  return out;
};

describe('mergeRows', () => {
  it('orders by time, then pseudonym, whatever order the subjects are given in', async () => {
    // Streams in participant-code order; pseudonyms sort the other way.
    const streams = [
      [row(2, 's-c', 70), row(5, 's-c', 71)],
      [row(2, 's-b', 60), row(3, 's-b', 61)],
      [row(1, 's-a', 50), row(2, 's-a', 51), row(9, 's-a', 52)],
    ];
    const merged = await collect(mergeRows(streams.map((s) => from(s))));
    expect(merged.map((r) => [r.time.slice(17, 19), r.subject])).toEqual([
      ['01', 's-a'],
      ['02', 's-a'],
      ['02', 's-b'],
      ['02', 's-c'],
      ['03', 's-b'],
      ['05', 's-c'],
      ['09', 's-a'],
    ]);
    expect(await collect(mergeRows([...streams].reverse().map((s) => from(s))))).toEqual(merged);
  });

  it('closes every stream when the reader stops early', async () => {
    const closed: string[] = [];
    const merged = mergeRows([
      from([row(1, 's-a', 1), row(3, 's-a', 2)], closed, 'a'),
      from([row(2, 's-b', 1), row(4, 's-b', 2)], closed, 'b'),
    ]);
    for await (const batch of merged) if (batch.some((r) => r.subject === 's-b')) break;
    expect(closed.sort()).toEqual(['a', 'b']);
  });
});

describe('sortTies', () => {
  it("puts one subject's rows of equal time in value order, not in the order InfluxDB gave them", async () => {
    // InfluxDB returns equal times in series-key order, that is by device id (bed-a, then bed-z).
    const byDevice = [row(1, 's-a', 80), row(1, 's-a', 60), row(2, 's-a', 90), row(2, 's-a', 70)];
    const sorted = await collect(sortTies(from(byDevice)));
    expect(sorted.map((r) => r.heartRate)).toEqual([60, 80, 70, 90]);
    const other = [row(1, 's-a', 60), row(1, 's-a', 80), row(2, 's-a', 70), row(2, 's-a', 90)];
    expect(await collect(sortTies(from(other)))).toEqual(sorted);
  });
});

/** A small deterministic PRNG (mulberry32): the same streams on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rows in random batches of 1..max rows. */
async function* randomBatches(
  rows: ReadingRow[],
  rnd: () => number,
  max: number,
): AsyncGenerator<ReadingRow[]> {
  for (let i = 0; i < rows.length; ) {
    const n = 1 + Math.floor(rnd() * max);
    yield rows.slice(i, i + n);
    i += n;
  }
}

describe('mergeRows in batches (issue 18)', () => {
  it('gives the order of one sort of all rows, whatever the batches, ties and overlaps', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = random(seed);
      // Subjects that overlap in time, one that lies wholly before the others (its batches go out
      // whole), equal times within and across subjects, and an empty stream.
      const streams = ['s-a', 's-b', 's-c', 's-d', 's-e'].map((subject, k) => {
        const n = k === 4 ? 0 : 1 + Math.floor(rnd() * 400);
        const offset = k === 3 ? -10_000 : 0;
        const rows = Array.from({ length: n }, () =>
          row(offset + Math.floor(rnd() * 300), subject, Math.floor(rnd() * 3)),
        );
        return rows.sort(compareRows);
      });
      const expected = streams.flat().sort(compareRows);
      const merged: ReadingRow[][] = [];
      for await (const b of mergeRows(streams.map((r) => randomBatches(r, rnd, 50)))) merged.push(b);
      expect(merged.flat()).toEqual(expected);
      expect(merged.every((b) => b.length > 0 && b.length < MERGED_BATCH_ROWS + 50)).toBe(true);
    }
  });

  it('hands rows on in batches, not one by one', async () => {
    const streams = ['s-a', 's-b', 's-c'].map((subject) =>
      Array.from({ length: 3000 }, (_, i) => row(i, subject, i % 7)),
    );
    const batches: number[] = [];
    for await (const b of mergeRows(streams.map((r) => from(r, undefined, undefined, 1000))))
      batches.push(b.length);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(9000);
    expect(batches.length).toBeLessThanOrEqual(Math.ceil(9000 / MERGED_BATCH_ROWS) + 1);
  });
});

describe('sortTies in batches (issue 18)', () => {
  it('sorts rows of one time that InfluxDB splits across two chunks', async () => {
    const rows = [
      row(1, 's-a', 5),
      row(2, 's-a', 90),
      row(2, 's-a', 80),
      row(2, 's-a', 70),
      row(3, 's-a', 1),
    ];
    // The second-time rows are cut after the first of them, and again after the next.
    for (const size of [1, 2, 3]) {
      const sorted = await collect(sortTies(from(rows, undefined, undefined, size)));
      expect(sorted.map((r) => r.heartRate)).toEqual([5, 70, 80, 90, 1]);
    }
  });
});
