// Pure: RFC 3339 timestamps to nanoseconds, keeping the sub-millisecond digits a Date would drop.

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Nanoseconds since the epoch, or undefined when the text is not an RFC 3339 date-time. */
export function parseRfc3339Ns(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, date, time, fraction = '', offset] = m;
  const offsetPart = offset === 'z' ? 'Z' : offset;
  // Leap second 60: JSON Schema's date-time accepts it; count it as the last instant of :59.
  const leap = (time as string).endsWith(':60');
  const ms = Date.parse(`${date}T${leap ? `${(time as string).slice(0, 6)}59` : time}${offsetPart}`);
  if (Number.isNaN(ms)) return undefined;
  const nanos = BigInt(fraction.padEnd(9, '0'));
  return BigInt(ms) * 1_000_000n + (leap ? 999_999_999n : nanos);
}

export function nsToIso(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const sub = ns % 1_000_000_000n;
  const iso = new Date(Number(ms)).toISOString().slice(0, 19);
  return `${iso}.${sub.toString().padStart(9, '0')}Z`;
}
