// Row streams to CSV, NDJSON or a JSON array, one chunk at a time (memory stays flat). Values keep
// their type: integers and booleans as such (JSON), time as RFC 3339 text at the asked precision.
// Arrow and FHIR have their own encoders (arrow.ts, fhir.ts).
import { FHIR_MEDIA_TYPE } from './fhir.js';
import type { ReadingRow } from './readings.js';

export const FORMATS = {
  csv: 'text/csv; charset=utf-8',
  ndjson: 'application/x-ndjson',
  json: 'application/json',
  arrow: 'application/vnd.apache.arrow.stream',
  fhir: FHIR_MEDIA_TYPE,
} as const;
export type Format = keyof typeof FORMATS;

const csvCell = (v: unknown) => {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export async function* encodeRows(
  rows: AsyncIterable<ReadingRow>,
  format: Exclude<Format, 'arrow' | 'fhir'>,
  /** Every column, in order (readings.ts exportColumns). */
  cols: readonly string[],
  onRow: () => void,
): AsyncGenerator<string> {
  if (format === 'csv') yield `${cols.join(',')}\n`;
  if (format === 'json') yield '[';
  let first = true;
  for await (const row of rows) {
    onRow();
    if (format === 'csv') yield `${cols.map((c) => csvCell(row[c])).join(',')}\n`;
    else if (format === 'ndjson') yield `${JSON.stringify(row)}\n`;
    else {
      yield `${first ? '' : ','}\n${JSON.stringify(row)}`;
      first = false;
    }
  }
  if (format === 'json') yield '\n]\n';
}
