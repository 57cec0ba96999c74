// The one owner of duration syntax ("250ms", "60s", "5m", "7d") and byte sizes ("16MiB"): the
// parsers and the JSON Schema patterns every file format (config, registry, fleets, scenarios)
// checks durations with. Pure; never reads files or the environment.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** The unit alternation, `ms` first so that a regular expression never reads "5ms" as minutes. */
export const DURATION_UNITS = Object.keys(UNITS).join('|');
const DURATION = new RegExp(`^(\\d+(?:\\.\\d+)?)(${DURATION_UNITS})$`);

/**
 * A JSON Schema pattern for a duration. The formats differ in what they admit (a fraction, a
 * leading minus for a clock skew, no zero for an interval); each states that here rather than
 * spelling the units again.
 * Every format requires the unit: a bare `90` once meant 90 ms, and a retention written that way
 * deleted every rotated log and report on the next housekeeping run.
 */
export function durationPattern(
  opts: { fraction?: boolean; signed?: boolean; positive?: boolean } = {},
): string {
  // `positive`: some digit is not 0, for an interval (a device reporting every 0 s is a mistake).
  const nonZero = opts.positive ? '(?=[-.0-9]*[1-9])' : '';
  return `^${nonZero}${opts.signed ? '-?' : ''}\\d+${opts.fraction ? '(\\.\\d+)?' : ''}(${DURATION_UNITS})$`;
}

/** Parses a duration with its unit. Returns undefined when it is not one (a bare number included). */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] as string] as number));
}

/**
 * Why `value` is not a duration, in words a technician can act on, or undefined when it is one.
 * `example` is a duration of the unit the option is usually written in ("90d"): a bare number is
 * shown with that unit, since that is what was most likely meant.
 */
export function durationProblem(value: unknown, example: string): string | undefined {
  if (typeof value === 'string' && parseDuration(value) !== undefined) return undefined;
  const unit = DURATION.exec(example)?.[2] ?? 's';
  const text = typeof value === 'string' ? value.trim() : String(value);
  if (/^\d+(\.\d+)?$/.test(text))
    return `${text} has no unit: write "${text}${unit}" (units: ${DURATION_UNITS.replace(/\|/g, ', ')})`;
  return `${JSON.stringify(value)} is not a duration: write a number and a unit, for example "${example}"`;
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
