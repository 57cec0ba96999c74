// The lab's calendar: which instants make up a day (YYYY-MM-DD) in the lab's time zone, so a daily
// report covers the lab's midnight to midnight (23 or 25 hours across a daylight-saving change),
// and which dates a report may be asked for. Pure; time comes in as arguments.
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
  return Date.UTC(year, month - 1, day, hour, minute, second) + (ms % 1000);
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

/** The first instant of `date` in `timeZone` (its local midnight). */
function startOf(date: string, timeZone: string): number {
  const midnight = Date.parse(`${date}T00:00:00Z`);
  // Twice: the offset at the first guess may differ from the offset at local midnight (DST).
  let at = midnight - (wallClock(midnight, timeZone) - midnight);
  at = midnight - (wallClock(at, timeZone) - at);
  return at;
}

/** The instants [from, to) of `date` in `timeZone`. */
export function dayBounds(date: string, timeZone: string): { from: number; to: number } {
  return { from: startOf(date, timeZone), to: startOf(addDays(date, 1), timeZone) };
}

/**
 * Why `text` cannot be the date of a report, or undefined when it can: it must be a real calendar
 * date (2026-02-30 is not) and not after `today`, the lab's current date.
 */
export function reportDateProblem(text: string, today: string): string | undefined {
  const real =
    /^\d{4}-\d\d-\d\d$/.test(text) &&
    !Number.isNaN(Date.parse(text)) &&
    new Date(Date.parse(text)).toISOString().slice(0, 10) === text;
  if (!real) return `"${text}" is not a calendar date like 2026-11-21`;
  if (text > today) return `${text} is in the future (today is ${today} in the lab's time zone)`;
  return undefined;
}
