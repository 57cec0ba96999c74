// The one owner of duration syntax ("250ms", "60s", "5m", "7d") and byte sizes ("16MiB"): the
// parsers and the JSON Schema patterns every file format (config, registry, fleets, scenarios)
// checks durations with. Pure; never reads files or the environment.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** The unit alternation, `ms` first so that a regular expression never reads "5ms" as minutes. */
export const DURATION_UNITS = Object.keys(UNITS).join('|');
const DURATION = new RegExp(`^(\\d+(?:\\.\\d+)?)\\s*(${DURATION_UNITS})$`);

/**
 * A JSON Schema pattern for a duration. The formats differ in what they admit (a fraction, a
 * leading minus for a clock skew, a bare number of milliseconds and a space before the unit as in
 * the configuration); each states that here rather than spelling the units again.
 */
export function durationPattern(opts: { fraction?: boolean; signed?: boolean; bare?: boolean } = {}): string {
  const unit = opts.bare ? `\\s*(${DURATION_UNITS})?` : `(${DURATION_UNITS})`;
  return `^${opts.signed ? '-?' : ''}\\d+${opts.fraction ? '(\\.\\d+)?' : ''}${unit}$`;
}

/** Parses a duration; a bare number is milliseconds. Returns undefined when it is not a duration. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : undefined;
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const m = DURATION.exec(trimmed);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] as string] as number));
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Byte sizes ("1GiB", "512MiB", "64kb", "1048576"); undefined when it is not a size. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}
