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
  Int32,
  Int64,
  makeData,
  makeVector,
  RecordBatchStreamWriter,
  Schema,
  Table,
  Timestamp,
  TimeUnit,
  Utf8,
  type Vector,
  vectorFromArray,
} from 'apache-arrow';
import { timeValue } from './export-time.js';
import type { ColumnKind, ReadingRow } from './readings.js';
import type { Precision } from './readings-params.js';

/** Rows per record batch; exported for tests that must cross it. */
export const ARROW_BATCH_ROWS = 5000;

const UNITS: Readonly<Record<Precision, TimeUnit>> = {
  s: TimeUnit.SECOND,
  ms: TimeUnit.MILLISECOND,
  us: TimeUnit.MICROSECOND,
  ns: TimeUnit.NANOSECOND,
};

function typeOf(kind: ColumnKind, precision: Precision): DataType {
  if (kind === 'time') return new Timestamp(UNITS[precision], 'UTC');
  if (kind === 'boolean') return new Bool();
  if (kind === 'string') return new Utf8();
  if (kind === 'integer') return new Int64();
  if (kind === 'version') return new Int32();
  return new Float64();
}

/**
 * A 64-bit column built from exact values: apache-arrow's builders take a timestamp as a number of
 * milliseconds (and scale it), which cannot carry nanoseconds, so the values are laid out directly.
 */
function bigIntVector(type: Int64 | Timestamp, values: readonly (bigint | null)[]): Vector {
  const data = new BigInt64Array(values.length);
  const valid = new Uint8Array((values.length + 7) >> 3);
  let nulls = 0;
  values.forEach((v, i) => {
    if (v === null) nulls++;
    else {
      data[i] = v;
      valid[i >> 3] = (valid[i >> 3] as number) | (1 << (i & 7));
    }
  });
  const props = { length: values.length, nullCount: nulls, nullBitmap: nulls > 0 ? valid : null, data };
  return type instanceof Int64
    ? makeVector(makeData({ ...props, type }))
    : makeVector(makeData({ ...props, type }));
}

const UTF8 = new TextEncoder();

/**
 * A text column laid out directly, each distinct value encoded once per batch: subject, device,
 * type, provenance and tag values repeat on almost every row, and encoding each copy again was the
 * largest cost of an Arrow export.
 */
function utf8Vector(type: Utf8, values: readonly unknown[]): Vector {
  const encoded = new Map<string, Uint8Array>();
  const parts: (Uint8Array | null)[] = values.map((v) => {
    if (v === null || v === undefined) return null;
    const text = String(v);
    let bytes = encoded.get(text);
    if (!bytes) {
      bytes = UTF8.encode(text);
      encoded.set(text, bytes);
    }
    return bytes;
  });
  const valueOffsets = new Int32Array(values.length + 1);
  let size = 0;
  parts.forEach((b, i) => {
    size += b?.length ?? 0;
    valueOffsets[i + 1] = size;
  });
  const data = new Uint8Array(size);
  const valid = new Uint8Array((values.length + 7) >> 3);
  let nulls = 0;
  parts.forEach((b, i) => {
    if (b === null) nulls++;
    else {
      data.set(b, valueOffsets[i] as number);
      valid[i >> 3] = (valid[i >> 3] as number) | (1 << (i & 7));
    }
  });
  return makeVector(
    makeData({
      type,
      length: values.length,
      nullCount: nulls,
      nullBitmap: nulls > 0 ? valid : null,
      valueOffsets,
      data,
    }),
  );
}

/**
 * A Float64 or Int32 column laid out directly (apache-arrow's builder, through vectorFromArray, cost
 * more than the rest of a batch): a value that is not a finite number is null.
 */
function numberVector(
  type: Float64 | Int32,
  Values: Float64ArrayConstructor | Int32ArrayConstructor,
  rows: readonly ReadingRow[],
  name: string,
): Vector {
  const data = new Values(rows.length);
  const valid = new Uint8Array((rows.length + 7) >> 3);
  let nulls = 0;
  for (let i = 0; i < rows.length; i++) {
    const v = (rows[i] as ReadingRow)[name];
    if (typeof v === 'number' && Number.isFinite(v)) {
      data[i] = v;
      valid[i >> 3] = (valid[i >> 3] as number) | (1 << (i & 7));
    } else nulls++;
  }
  const props = { length: rows.length, nullCount: nulls, nullBitmap: nulls > 0 ? valid : null };
  return type instanceof Float64
    ? makeVector(makeData({ ...props, type, data: data as Float64Array }))
    : makeVector(makeData({ ...props, type, data: data as Int32Array }));
}

function columnVector(
  rows: readonly ReadingRow[],
  name: string,
  kind: ColumnKind,
  type: DataType,
  precision: Precision,
) {
  if (kind === 'time')
    return bigIntVector(
      type as Timestamp,
      rows.map((r) => timeValue(r.time, precision)),
    );
  if (kind === 'integer')
    return bigIntVector(
      type as Int64,
      rows.map((r) => {
        const v = r[name];
        return typeof v === 'number' && Number.isFinite(v) ? BigInt(Math.trunc(v)) : null;
      }),
    );
  if (kind === 'float') return numberVector(type as Float64, Float64Array, rows, name);
  if (kind === 'version') return numberVector(type as Int32, Int32Array, rows, name);
  const values = rows.map((r) => r[name] ?? null);
  return kind === 'string' ? utf8Vector(type as Utf8, values) : vectorFromArray(values, type);
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

/**
 * Integers as Int64, the time as Timestamp(unit of `precision`, "UTC"), the schema version as Int32,
 * each value exact.
 */
export async function* encodeArrow(
  batches: AsyncIterable<readonly ReadingRow[]>,
  columns: readonly { name: string; kind: ColumnKind }[],
  precision: Precision,
  onRows: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  const types = columns.map((c) => ({ ...c, type: typeOf(c.kind, precision) }));
  const schema = new Schema(types.map(({ name, type }) => new Field(name, type, true)));
  const writer = new PulledStreamWriter();
  const write = (batch: readonly ReadingRow[]) => {
    const arrays: Record<string, Vector> = {};
    for (const { name, kind, type } of types) arrays[name] = columnVector(batch, name, kind, type, precision);
    for (const b of new Table(schema, arrays).batches) writer.write(b);
  };
  // Record batches of exactly ARROW_BATCH_ROWS, whatever the size of the batches that come in.
  let batch: ReadingRow[] = [];
  let total = 0;
  for await (const rows of batches) {
    onRows(rows.length);
    total += rows.length;
    for (let i = 0; i < rows.length; ) {
      const take = Math.min(rows.length - i, ARROW_BATCH_ROWS - batch.length);
      for (const end = i + take; i < end; i++) batch.push(rows[i] as ReadingRow);
      if (batch.length < ARROW_BATCH_ROWS) continue;
      write(batch);
      batch = [];
    }
    yield* writer.take();
  }
  // An export with no rows still carries its schema.
  if (batch.length > 0 || total === 0) write(batch);
  writer.finish();
  yield* writer.take();
}
