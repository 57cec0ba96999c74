// A date means a day in the lab's time zone: its first instant is the local midnight, and a day
// across a daylight-saving change lasts 23 or 25 hours (Europe/Copenhagen changes on 2026-03-29
// and 2026-10-25); the lab's date of an instant just after local midnight is the new date.
import { describe, expect, it } from 'vitest';
import { addDays, dayBounds, dayOf, resolveTimeZone, startOfDay } from '../../src/config/time-zone.js';

const CPH = 'Europe/Copenhagen';
const iso = (ms: number) => new Date(ms).toISOString();

describe('startOfDay / dayBounds', () => {
  it.each([
    // date, zone, first instant, first instant of the next day, hours
    ['2026-01-15', CPH, '2026-01-14T23:00:00.000Z', '2026-01-15T23:00:00.000Z', 24],
    ['2026-03-28', CPH, '2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z', 24],
    ['2026-03-29', CPH, '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 23],
    ['2026-03-30', CPH, '2026-03-29T22:00:00.000Z', '2026-03-30T22:00:00.000Z', 24],
    ['2026-10-25', CPH, '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 25],
    ['2026-10-26', CPH, '2026-10-25T23:00:00.000Z', '2026-10-26T23:00:00.000Z', 24],
    ['2026-03-29', 'UTC', '2026-03-29T00:00:00.000Z', '2026-03-30T00:00:00.000Z', 24],
    ['2026-12-31', 'Pacific/Kiritimati', '2026-12-30T10:00:00.000Z', '2026-12-31T10:00:00.000Z', 24],
    ['2026-03-08', 'America/St_Johns', '2026-03-08T03:30:00.000Z', '2026-03-09T02:30:00.000Z', 23],
    // Chile moves its clocks at midnight: 2026-09-06 starts at 01:00 local, its first instant.
    ['2026-09-06', 'America/Santiago', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z', 23],
  ])('%s in %s runs from %s to %s (%i h)', (date, zone, from, to, hours) => {
    const b = dayBounds(date, zone);
    expect([iso(b.from), iso(b.to)]).toEqual([from, to]);
    expect(startOfDay(date, zone)).toBe(b.from);
    expect((b.to - b.from) / 3_600_000).toBe(hours);
    // The bounds are exact: the instant before is the previous local date, the first one is the date.
    expect([dayOf(b.from - 1, zone), dayOf(b.from, zone), dayOf(b.to - 1, zone)]).toEqual([
      addDays(date, -1),
      date,
      date,
    ]);
  });
});

describe('dayOf', () => {
  it.each([
    // just after local midnight, the UTC date is still yesterday's
    ['2026-01-15T23:05:00.000Z', CPH, '2026-01-16'],
    ['2026-03-28T23:00:00.000Z', CPH, '2026-03-29'],
    ['2026-03-28T22:59:59.999Z', CPH, '2026-03-28'],
    ['2026-06-30T22:01:00.000Z', CPH, '2026-07-01'],
    ['2026-10-24T22:00:00.000Z', CPH, '2026-10-25'],
    // the repeated hour 02:00-03:00 on 2026-10-25 is one date
    ['2026-10-25T00:30:00.000Z', CPH, '2026-10-25'],
    ['2026-10-25T01:30:00.000Z', CPH, '2026-10-25'],
    ['2026-10-25T22:59:59.999Z', CPH, '2026-10-25'],
    ['2026-10-25T23:00:00.000Z', CPH, '2026-10-26'],
    ['2026-01-15T23:05:00.000Z', 'UTC', '2026-01-15'],
    ['1969-12-31T23:59:59.500Z', 'UTC', '1969-12-31'],
  ])('%s is %s in %s', (at, zone, date) => {
    expect(dayOf(Date.parse(at), zone)).toBe(date);
  });
});

describe('resolveTimeZone', () => {
  it('keeps a configured IANA name and refuses an unknown one with a config error', () => {
    expect(resolveTimeZone(CPH)).toBe(CPH);
    expect(resolveTimeZone('UTC')).toBe('UTC');
    expect(() => resolveTimeZone('Europe/Atlantis')).toThrow(/not an IANA time zone name/);
  });

  it("takes the system's zone when none is configured", () => {
    expect(resolveTimeZone('')).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });
});
