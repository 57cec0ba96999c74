// Counts the rows of an export as its bytes go by, for `livinglab export`: records, not lines
// (a CSV value may hold a newline, a JSON array has brackets), FHIR Observations (not the Device
// resources beside them), and Arrow record batches by their
// declared length. Reads framing only and keeps no more than one Arrow message header in memory,
// never the rows themselves.
import { Message } from 'apache-arrow';

export interface RowCounter {
  push(chunk: Uint8Array): void;
  /** Rows seen so far (complete rows only). */
  readonly rows: number;
}

const NEWLINE = 10;
const QUOTE = 34;
const BRACE = 123;

/** CSV: a newline outside quotes ends a record; the first record is the header. */
function csvCounter(): RowCounter {
  let records = 0;
  let quoted = false;
  return {
    push(chunk) {
      for (const b of chunk) {
        if (b === QUOTE) quoted = !quoted;
        else if (b === NEWLINE && !quoted) records++;
      }
    },
    get rows() {
      return Math.max(0, records - 1);
    },
  };
}

/** NDJSON: one line per row (JSON text never holds a raw newline). */
function lineCounter(): RowCounter {
  let lines = 0;
  return {
    push(chunk) {
      for (const b of chunk) if (b === NEWLINE) lines++;
    },
    get rows() {
      return lines;
    },
  };
}

/** A JSON array as the gateway writes it: each row starts a line with `{`. */
function jsonCounter(): RowCounter {
  let rows = 0;
  let afterNewline = false;
  return {
    push(chunk) {
      for (const b of chunk) {
        if (afterNewline && b === BRACE) rows++;
        afterNewline = b === NEWLINE;
      }
    },
    get rows() {
      return rows;
    },
  };
}

/**
 * An Arrow IPC stream: each message is [0xFFFFFFFF] int32 metadata length, the metadata, then
 * `bodyLength` bytes; a record batch's metadata says how many rows it holds. Bodies are skipped.
 */
function arrowCounter(): RowCounter {
  let rows = 0;
  let pending: Buffer = Buffer.alloc(0);
  let skip = 0;
  const step = (): boolean => {
    if (skip > 0) {
      const n = Math.min(skip, pending.length);
      skip -= n;
      pending = pending.subarray(n);
      if (skip > 0) return false;
    }
    if (pending.length < 4) return false;
    let at = 0;
    let length = pending.readInt32LE(0);
    if (length === -1) {
      if (pending.length < 8) return false;
      length = pending.readInt32LE(4);
      at = 4;
    }
    if (pending.length < at + 4 + length) return false;
    if (length > 0) {
      const message = Message.decode(pending.subarray(at + 4, at + 4 + length));
      if (message.isRecordBatch()) rows += message.header().length;
      skip = Number(message.bodyLength);
    }
    pending = pending.subarray(at + 4 + length);
    return true;
  };
  return {
    push(chunk) {
      let c = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (skip > 0) {
        const n = Math.min(skip, c.length);
        skip -= n;
        c = c.subarray(n);
      }
      pending = pending.length > 0 ? Buffer.concat([pending, c]) : c;
      while (step()) {
        // Each step reads one message header and skips its body.
      }
      // What is left is part of one header: copied, so the chunk it came in can go.
      if (pending.length > 0) pending = Buffer.from(pending);
    },
    get rows() {
      return rows;
    },
  };
}

const OBSERVATION = Buffer.from('{"resourceType":"Observation"');

/**
 * FHIR NDJSON: one resource per line, resourceType first (query/fhir.ts); Observations count (one
 * per reading and coded field), the Device resources beside them do not.
 */
function fhirCounter(): RowCounter {
  let observations = 0;
  let start: number[] = [];
  let atLineStart = true;
  return {
    push(chunk) {
      for (const b of chunk) {
        if (b === NEWLINE) {
          atLineStart = true;
          start = [];
          continue;
        }
        if (!atLineStart) continue;
        start.push(b);
        if (start.length === OBSERVATION.length) {
          if (OBSERVATION.equals(Buffer.from(start))) observations++;
          atLineStart = false;
        }
      }
    },
    get rows() {
      return observations;
    },
  };
}

/** The counter for an export format; formats written one record per line count lines. */
export function createRowCounter(format: string): RowCounter {
  if (format === 'csv') return csvCounter();
  if (format === 'json') return jsonCounter();
  if (format === 'arrow') return arrowCounter();
  if (format === 'fhir') return fhirCounter();
  return lineCounter();
}
