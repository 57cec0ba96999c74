// Wearable fall detector: a "fall" event when the resident falls (scenario), a daily check-in at
// noon, and about one false alarm a month that the resident cancels within a minute (false-alarm
// rates of worn detectors: Chaudhuri et al., J Gerontol Nurs 2014;40:13).
import { clamp, round } from '../random.js';
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const fallDetector: Model = function* (ctx) {
  const events: { t: number; body: Record<string, unknown> }[] = [];
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    const noon = day + 12 * HOUR + Math.round(ctx.rng.uniform(0, 60_000));
    events.push({ t: noon, body: { event: 'check-in' } });
    if (ctx.rng.chance(1 / 30)) {
      const t = day + ctx.rng.uniform(9 * HOUR, 20 * HOUR);
      events.push({ t, body: { event: 'fall', confidence: round(ctx.rng.uniform(0.55, 0.7), 2) } });
      events.push({ t: t + ctx.rng.uniform(10_000, 50_000), body: { event: 'cancelled' } });
    }
  }
  // Real falls come from the resident's state, sampled each minute.
  let before = ctx.resident.state(ctx.start);
  for (let t = ctx.start; t < ctx.end; t += MIN) {
    const now = ctx.resident.state(t);
    if (now.activity === 'fallen' && before.activity !== 'fallen') {
      events.push({
        t: t + 2000,
        body: {
          event: 'fall',
          confidence: round(clamp(ctx.rng.normal(0.92, 0.03), 0.8, 0.99), 2),
          room: now.room,
        },
      });
    }
    before = now;
  }
  events.sort((a, b) => a.t - b.t);
  for (const e of events) {
    if (e.t < ctx.start || e.t >= ctx.end) continue;
    const t = Math.round(e.t);
    yield { t, body: withBattery(ctx, t, { ts: iso(t), ...e.body }) };
  }
};
