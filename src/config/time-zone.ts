// The lab's calendar: a date (YYYY-MM-DD) means a day in the lab's time zone (the `timezone`
// option), from its local midnight to the next (23 or 25 hours across a daylight-saving change).
// Project periods, consent dates, the daily report's day and `every=1d` windows all read dates
// through this one module, so they never disagree about where a day starts. Pure: time comes in as
// arguments, zones come from Intl (no tz database of our own); it never reads the system clock.
import { GatewayError } from '../errors.js';

const DAY_MS = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock time at `ms` in `timeZone`, read as if it were UTC. */
function wallClock(ms: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(ms))
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const { year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = parts;
  return Date.UTC(year, month - 1, day, hour, minute, second) + (((ms % 1000) + 1000) % 1000);
}

/** The configured time zone, or the system's when empty; an unknown name is a config error. */
export function resolveTimeZone(configured: string): string {
  const name = configured || Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    formatterFor(name);
  } catch {
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `timezone: "${configured}" is not an IANA time zone name (for example Europe/Copenhagen or UTC)`,
    );
  }
  return name;
}

/** The lab's date (YYYY-MM-DD) at the instant `ms`. */
export const dayOf = (ms: number, timeZone: string): string =>
  new Date(wallClock(ms, timeZone)).toISOString().slice(0, 10);

/** The lab's wall-clock time (HH:MM) of an ISO instant. */
export const clockOf = (iso: string, timeZone: string): string =>
  new Date(wallClock(Date.parse(iso), timeZone)).toISOString().slice(11, 16);

/** `date` moved by `days` calendar days. */
export const addDays = (date: string, days: number): string =>
  new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);

/**
 * The first instant (epoch ms) of `date` in `timeZone`: its local midnight. Where a zone skips
 * midnight itself (a change at 00:00), the first instant that exists on that date.
 */
export function startOfDay(date: string, timeZone: string): number {
  const midnight = Date.parse(`${date}T00:00:00Z`);
  // Twice: the offset at the first guess may differ from the offset at local midnight (DST).
  let at = midnight - (wallClock(midnight, timeZone) - midnight);
  at = midnight - (wallClock(at, timeZone) - at);
  // A skipped midnight lands on the previous evening: move on by what the wall clock lacks, to the
  // first instant after the gap.
  if (dayOf(at, timeZone) < date) at += midnight - wallClock(at, timeZone);
  return at;
}

/** The instants [from, to) of `date` in `timeZone`. */
export function dayBounds(date: string, timeZone: string): { from: number; to: number } {
  return { from: startOfDay(date, timeZone), to: startOfDay(addDays(date, 1), timeZone) };
}
