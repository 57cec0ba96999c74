// Rows as an Apache Arrow IPC stream (pandas: pyarrow.ipc.open_stream; R: arrow::read_ipc_stream),
// written in record batches of 5,000 rows. The writer is given record batches, never a Table:
// apache-arrow's `write(table)` is `writeAll`, which finishes the stream after that table, and that
// cut every export off after its first 5,000 rows (issue 13, item 7). One schema, fixed before the
// first row and nullable throughout, serves every batch (the writer also closes its stream when a
// batch's schema differs from the first). Bytes are handed out batch by batch as the reader pulls,
// so memory stays flat however many rows come out and however slow the client is.
import {
  Bool,
  type DataType,
  Field,
  Float64,
  RecordBatchStreamWriter,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  type Vector,
  vectorFromArray,
} from 'apache-arrow';
import type { FieldKind } from '../schemas/types.js';
import type { ReadingRow } from './readings.js';

/** Rows per record batch; exported for tests that must cross it. */
export const ARROW_BATCH_ROWS = 5000;

function typeOf(kind: FieldKind | 'count'): DataType {
  if (kind === 'boolean') return new Bool();
  if (kind === 'string') return new Utf8();
  return new Float64();
}

/**
 * The stream writer, with its output kept in a list the generator empties after each batch
 * instead of apache-arrow's unbounded internal queue, which a producer can fill faster than a slow
 * client drains it.
 */
class PulledStreamWriter extends RecordBatchStreamWriter {
  private pending: Uint8Array[] = [];
  protected override _write(chunk: ArrayBufferView): this {
    if (this._started && chunk.byteLength > 0) {
      this.pending.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this._position += chunk.byteLength;
    }
    return this;
  }
  take(): Uint8Array[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }
}

export async function* encodeArrow(
  rows: AsyncIterable<ReadingRow>,
  columns: readonly { name: string; kind: FieldKind }[],
  onRow: () => void,
): AsyncGenerator<Uint8Array> {
  const types: [string, DataType][] = [
    ['time', new TimestampMillisecond()],
    ['subject', new Utf8()],
    ...columns.map((c): [string, DataType] => [c.name, typeOf(c.kind)]),
  ];
  const schema = new Schema(types.map(([name, type]) => new Field(name, type, true)));
  const writer = new PulledStreamWriter();
  const write = (batch: ReadingRow[]) => {
    const arrays: Record<string, Vector> = {};
    for (const [name, type] of types)
      arrays[name] = vectorFromArray(
        batch.map((r) => (name === 'time' ? Date.parse(r.time) : (r[name] ?? null))),
        type,
      );
    for (const b of new Table(schema, arrays).batches) writer.write(b);
  };
  let batch: ReadingRow[] = [];
  let total = 0;
  for await (const row of rows) {
    onRow();
    total++;
    batch.push(row);
    if (batch.length >= ARROW_BATCH_ROWS) {
      write(batch);
      batch = [];
      yield* writer.take();
    }
  }
  // An export with no rows still carries its schema.
  if (batch.length > 0 || total === 0) write(batch);
  writer.finish();
  yield* writer.take();
}
