// Rows as an Apache Arrow IPC stream (pandas: pyarrow.ipc.open_stream; R: arrow::read_ipc_stream),
// written in record batches of 5,000 rows so memory stays flat however many rows come out.
import type { Readable } from 'node:stream';
import {
  Bool,
  type DataType,
  Float64,
  RecordBatchStreamWriter,
  Table,
  TimestampMillisecond,
  Utf8,
  type Vector,
  vectorFromArray,
} from 'apache-arrow';
import type { FieldKind } from '../schemas/types.js';
import type { ReadingRow } from './readings.js';

const BATCH = 5000;

function typeOf(kind: FieldKind | 'count'): DataType {
  if (kind === 'boolean') return new Bool();
  if (kind === 'string') return new Utf8();
  return new Float64();
}

export function encodeArrow(
  rows: AsyncIterable<ReadingRow>,
  columns: readonly { name: string; kind: FieldKind }[],
  onRow: () => void,
): Readable {
  const writer = new RecordBatchStreamWriter();
  const out = writer.toNodeStream();
  const flush = (batch: ReadingRow[]) => {
    const arrays: Record<string, Vector> = {
      time: vectorFromArray(
        batch.map((r) => Date.parse(r.time)),
        new TimestampMillisecond(),
      ),
      subject: vectorFromArray(
        batch.map((r) => r.subject),
        new Utf8(),
      ),
    };
    for (const c of columns)
      arrays[c.name] = vectorFromArray(
        batch.map((r) => r[c.name] ?? null),
        typeOf(c.kind),
      );
    writer.write(new Table(arrays));
  };
  (async () => {
    let batch: ReadingRow[] = [];
    let total = 0;
    for await (const row of rows) {
      onRow();
      total++;
      batch.push(row);
      if (batch.length >= BATCH) {
        flush(batch);
        batch = [];
      }
    }
    // An export with no rows still carries its schema.
    if (batch.length > 0 || total === 0) flush(batch);
    writer.finish();
  })().catch((err: Error) => out.destroy(err));
  return out;
}
