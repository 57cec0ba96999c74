// The daily report's calendar: which dates a report may be asked for. A day is the lab's midnight
// to midnight (23 or 25 hours across a daylight-saving change); that conversion lives in
// config/time-zone.ts, shared with the research export, and is re-exported here for the jobs.
// Pure; time comes in as arguments.
export { addDays, clockOf, dayBounds, dayOf, resolveTimeZone } from '../config/time-zone.js';

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
