// Automatic dispenser with doses at 08:00 and 20:00: "dose-due", then "dose-taken" after a delay
// when the resident is home and awake, or "dose-missed" after 60 minutes. Adherence of older adults
// with automated dispensers is typically 85–95 % (Kamal et al., Patient Prefer Adherence 2020;14:87).
// Refilled on Sundays; slot = 1–14 over the week (two doses a day).
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const medicationDispenser: Model = function* (ctx) {
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    const weekday = new Date(day + 12 * HOUR).getUTCDay();
    const events: { t: number; body: Record<string, unknown> }[] = [];
    if (weekday === 0) events.push({ t: day + 10 * HOUR, body: { event: 'refilled', slot: 0 } });
    for (const [i, hour] of [8, 20].entries()) {
      const slot = weekday * 2 + i + 1;
      const due = day + hour * HOUR;
      events.push({ t: due, body: { event: 'dose-due', slot } });
      // The first minute in the next hour the resident is home and awake takes the dose.
      let taken: number | undefined;
      for (let t = due + 30_000; t < due + HOUR; t += MIN) {
        const s = ctx.resident.state(t);
        if (
          s.activity !== 'sleep' &&
          s.activity !== 'out' &&
          s.activity !== 'fallen' &&
          ctx.rng.chance(0.25)
        ) {
          taken = t;
          break;
        }
      }
      if (taken !== undefined && ctx.rng.chance(0.95)) {
        events.push({
          t: taken,
          body: { event: 'dose-taken', slot, delay: Math.round((taken - due) / 1000) },
        });
      } else {
        events.push({ t: due + HOUR, body: { event: 'dose-missed', slot } });
      }
    }
    for (const e of events.sort((a, b) => a.t - b.t)) {
      const t = Math.round(e.t);
      if (t < ctx.start || t >= ctx.end) continue;
      yield { t, body: withBattery(ctx, t, { ts: iso(t), ...e.body }) };
    }
  }
};
