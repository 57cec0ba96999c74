// The time column of an export: InfluxDB's RFC 3339 answer (nanoseconds, trailing zeros dropped)
// to a fixed width of 0, 3, 6 or 9 fraction digits, and that text to an exact integer count of the
// unit for Arrow. Never goes through a JS number: 2^53 ns is only about 104 days.
import type { Precision } from './readings-params.js';

const DIGITS: Readonly<Record<Precision, number>> = { s: 0, ms: 3, us: 6, ns: 9 };
const RFC3339_UTC = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/;

// A time that already has all nine digits, as most of InfluxDB's answers do: at ns it comes out
// as it is (one regex test, no new string: this runs once per exported row).
const RFC3339_NS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

/** `2026-03-01T10:00:00.12345679Z` at ns → `2026-03-01T10:00:00.123456790Z`; shorter precisions cut. */
export function formatTime(rfc3339: string, precision: Precision): string {
  if (precision === 'ns' && rfc3339.length === 30 && RFC3339_NS.test(rfc3339)) return rfc3339;
  const m = RFC3339_UTC.exec(rfc3339);
  if (!m) throw new Error(`InfluxDB gave a time the gateway cannot read: ${rfc3339.slice(0, 40)}`);
  const digits = DIGITS[precision];
  return digits === 0 ? `${m[1]}Z` : `${m[1]}.${(m[2] ?? '').padEnd(9, '0').slice(0, digits)}Z`;
}

const SCALE: Readonly<Record<Precision, bigint>> = { s: 1n, ms: 1000n, us: 1_000_000n, ns: 1_000_000_000n };
// Rows come in time order, so consecutive times mostly share their second: parsed once.
let lastSecond = '';
let lastSeconds = 0n;

/** A time from formatTime, as a count of `precision` units since the epoch (Arrow's Timestamp value). */
export function timeValue(time: string, precision: Precision): bigint {
  const digits = DIGITS[precision];
  if (time.length !== (digits === 0 ? 20 : 21 + digits) || time[19] !== (digits === 0 ? 'Z' : '.'))
    throw new Error(`not an export time at ${precision}: ${time.slice(0, 40)}`);
  const second = time.slice(0, 19);
  if (second !== lastSecond) {
    const ms = Date.parse(`${second}Z`);
    if (Number.isNaN(ms)) throw new Error(`not an export time: ${time.slice(0, 40)}`);
    lastSeconds = BigInt(ms / 1000);
    lastSecond = second;
  }
  return lastSeconds * SCALE[precision] + (digits === 0 ? 0n : BigInt(time.slice(20, 20 + digits)));
}
