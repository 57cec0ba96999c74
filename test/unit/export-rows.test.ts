// `livinglab export` counts rows, not lines: the counter against the gateway's own encoders, with
// the bytes cut at awkward places (a quoted newline in CSV, an Arrow header split across chunks).
import { describe, expect, it } from 'vitest';
import { createRowCounter } from '../../src/cli/export-rows.js';
import { ARROW_BATCH_ROWS, encodeArrow } from '../../src/query/arrow.js';
import { encodeRows } from '../../src/query/formats.js';
import { TEXT_PIECE } from '../../src/query/merge.js';
import type { ReadingRow } from '../../src/query/readings.js';

const COLUMNS = [
  { name: 'time', kind: 'time' as const },
  { name: 'subject', kind: 'string' as const },
  { name: 'event', kind: 'string' as const },
  { name: 'n', kind: 'integer' as const },
];

/** `count` rows, in batches of 1,000 (as the export's merge hands them on). */
async function* rows(count: number): AsyncGenerator<ReadingRow[]> {
  let batch: ReadingRow[] = [];
  for (let i = 0; i < count; i++) {
    batch.push({
      time: '2026-03-01T10:00:00.000000001Z',
      subject: 's-1',
      event: i % 3 ? 'a' : 'line\nbreak, "quoted"',
      n: i,
    });
    if (batch.length === 1000) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function bytesOf(format: 'csv' | 'ndjson' | 'json' | 'arrow', count: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const out =
    format === 'arrow'
      ? encodeArrow(rows(count), COLUMNS, 'ns', () => undefined)
      : encodeRows(
          rows(count),
          format,
          COLUMNS.map((c) => c.name),
          () => undefined,
        );
  for await (const p of out) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

describe('row counter', () => {
  it.each([
    ['csv', 0],
    ['csv', 7],
    ['ndjson', 7],
    ['json', 0],
    ['json', 7],
    ['arrow', 0],
    ['arrow', ARROW_BATCH_ROWS * 2 + 3],
  ] as const)('counts %s rows (%i) whatever the chunk size', async (format, count) => {
    const bytes = await bytesOf(format, count);
    for (const size of [1, 7, 4096, bytes.length]) {
      const counter = createRowCounter(format);
      for (let i = 0; i < bytes.length; i += size) counter.push(bytes.subarray(i, i + size));
      expect(counter.rows).toBe(count);
    }
  });
});

describe('text pieces (issue 18)', () => {
  it.each(['csv', 'ndjson', 'json'] as const)(
    'writes a large batch as %s in pieces of about TEXT_PIECE',
    async (format) => {
      const batch: ReadingRow[] = [];
      for await (const b of rows(20_000)) batch.push(...b);
      async function* one() {
        yield batch;
      }
      const pieces: string[] = [];
      const cols = COLUMNS.map((c) => c.name);
      for await (const p of encodeRows(one(), format, cols, () => undefined)) pieces.push(p);
      const text = pieces.join('');
      expect(text.length).toBeGreaterThan(2 * TEXT_PIECE);
      // Each piece ends at a row's end, one row past TEXT_PIECE at most.
      expect(Math.max(...pieces.map((p) => p.length))).toBeLessThan(TEXT_PIECE + 200);
      const whole: string[] = [];
      for await (const p of encodeRows(rows(20_000), format, cols, () => undefined)) whole.push(p);
      expect(text).toBe(whole.join(''));
    },
  );
});
