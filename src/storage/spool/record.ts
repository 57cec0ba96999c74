// The spool's record format, the one thing that makes a spool folder readable by the next version:
// a record is [u32 length][u32 crc32][f64 appendedAt][payload], little-endian, the CRC covering
// appendedAt and the payload. Pure: never touches a file, never decides what to do with a bad record
// (recovery cuts, the reader stops).
import { crc32 } from 'node:zlib';
import type { Position, QueuedRecord } from '../queue.js';

export const HEADER = 16;
/** Longer than any record the gateway writes: a length above it is damage, not a torn tail. */
const MAX_RECORD = 64 * 1024 * 1024;

export function encodeRecord(payload: Buffer, appendedAt: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeDoubleLE(appendedAt, 8);
  payload.copy(buf, HEADER);
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4);
  return buf;
}

/** appendedAt of an encoded record, without decoding it. */
export const appendedAtOf = (encoded: Buffer) => encoded.readDoubleLE(8);

/** Bytes of the payload of the record that starts `at` in `buf` (its header must be there). */
export const payloadLengthAt = (buf: Buffer, at: number) => buf.readUInt32LE(at);

/** Parses records from `buf`; stops at the first incomplete or corrupt one and says where. */
export function decodeRecords(
  buf: Buffer,
  segment: number,
  baseOffset = 0,
): { records: QueuedRecord[]; end: number; corrupt: boolean } {
  const records: QueuedRecord[] = [];
  let at = 0;
  while (at + HEADER <= buf.length) {
    const length = buf.readUInt32LE(at);
    if (length > MAX_RECORD) return { records, end: at, corrupt: true };
    if (at + HEADER + length > buf.length) return { records, end: at, corrupt: false };
    const sum = buf.readUInt32LE(at + 4);
    if (crc32(buf.subarray(at + 8, at + HEADER + length)) !== sum) return { records, end: at, corrupt: true };
    records.push({
      position: { segment, offset: baseOffset + at + HEADER + length },
      appendedAt: buf.readDoubleLE(at + 8),
      payload: buf.subarray(at + HEADER, at + HEADER + length),
    });
    at += HEADER + length;
  }
  return { records, end: at, corrupt: false };
}

/** Positions are ordered by segment, then by offset within it. */
export const isAfter = (p: Position, q: Position) =>
  p.segment > q.segment || (p.segment === q.segment && p.offset > q.offset);
