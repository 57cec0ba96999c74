// The time column of an export: InfluxDB's RFC 3339 answer (nanoseconds, trailing zeros dropped)
// to a fixed width of 0, 3, 6 or 9 fraction digits, and that text to an exact integer count of the
// unit for Arrow. Never goes through a JS number: 2^53 ns is only about 104 days.
import type { Precision } from './readings-params.js';

const DIGITS: Readonly<Record<Precision, number>> = { s: 0, ms: 3, us: 6, ns: 9 };
const RFC3339_UTC = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/;

/** `2026-03-01T10:00:00.12345679Z` at ns → `2026-03-01T10:00:00.123456790Z`; shorter precisions cut. */
export function formatTime(rfc3339: string, precision: Precision): string {
  const m = RFC3339_UTC.exec(rfc3339);
  if (!m) throw new Error(`InfluxDB gave a time the gateway cannot read: ${rfc3339.slice(0, 40)}`);
  const digits = DIGITS[precision];
  return digits === 0 ? `${m[1]}Z` : `${m[1]}.${(m[2] ?? '').padEnd(9, '0').slice(0, digits)}Z`;
}

/** A time from formatTime, as a count of `precision` units since the epoch (Arrow's Timestamp value). */
export function timeValue(time: string, precision: Precision): bigint {
  const m = RFC3339_UTC.exec(time);
  if (!m) throw new Error(`not an export time: ${time.slice(0, 40)}`);
  const digits = DIGITS[precision];
  const seconds = BigInt(Date.parse(`${m[1]}Z`) / 1000);
  return seconds * 10n ** BigInt(digits) + BigInt((m[2] ?? '').padEnd(digits, '0').slice(0, digits) || '0');
}
