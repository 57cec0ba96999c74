// Row streams to CSV, NDJSON or a JSON array, one chunk at a time (memory stays flat). Values keep
// their type: integers and booleans as such (JSON), time as RFC 3339 text at the asked precision.
// Arrow and FHIR have their own encoders (arrow.ts, fhir.ts).
import { FHIR_MEDIA_TYPE } from './fhir.js';
import { TEXT_PIECE } from './merge.js';
import type { ReadingRow } from './readings.js';

export const FORMATS = {
  csv: 'text/csv; charset=utf-8',
  ndjson: 'application/x-ndjson',
  json: 'application/json',
  arrow: 'application/vnd.apache.arrow.stream',
  fhir: FHIR_MEDIA_TYPE,
} as const;
export type Format = keyof typeof FORMATS;

const csvText = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
const csvCell = (v: unknown) => {
  if (v === null || v === undefined) return '';
  // A number or boolean never needs quotes; most cells are one.
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return csvText(typeof v === 'string' ? v : String(v));
};

/** One CSV line. */
function csvLine(row: ReadingRow, cols: readonly string[]): string {
  let line = csvCell(row[cols[0] as string]);
  for (let i = 1; i < cols.length; i++) line += `,${csvCell(row[cols[i] as string])}`;
  return `${line}\n`;
}

/** Rows in batches (merge.ts), written out in pieces of about TEXT_PIECE (merge.ts), not one string per row. */
export async function* encodeRows(
  batches: AsyncIterable<readonly ReadingRow[]>,
  format: Exclude<Format, 'arrow' | 'fhir'>,
  /** Every column, in order (readings.ts exportColumns). */
  cols: readonly string[],
  onRows: (n: number) => void,
): AsyncGenerator<string> {
  if (format === 'csv') yield `${cols.join(',')}\n`;
  if (format === 'json') yield '[';
  let first = true;
  for await (const rows of batches) {
    onRows(rows.length);
    let text = '';
    for (const row of rows) {
      if (format === 'csv') text += csvLine(row, cols);
      else if (format === 'ndjson') text += `${JSON.stringify(row)}\n`;
      else {
        text += `${first ? '' : ','}\n${JSON.stringify(row)}`;
        first = false;
      }
      if (text.length < TEXT_PIECE) continue;
      yield text;
      text = '';
    }
    if (text) yield text;
  }
  if (format === 'json') yield '\n]\n';
}
