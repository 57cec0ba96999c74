// Social-alarm pendant: a daily check-in, a press 1–3 minutes after a fall (when the resident is
// conscious; scenario), and rare accidental presses cancelled at the button (about one in 60 days).
import { round } from '../random.js';
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const emergencyButton: Model = function* (ctx) {
  const events: { t: number; body: Record<string, unknown> }[] = [];
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    events.push({ t: day + 9 * HOUR + ctx.rng.uniform(0, MIN), body: { event: 'check-in' } });
    if (ctx.rng.chance(1 / 60)) {
      const t = day + ctx.rng.uniform(8 * HOUR, 21 * HOUR);
      events.push({ t, body: { event: 'pressed', pressDuration: round(ctx.rng.uniform(0.3, 1), 1) } });
      events.push({ t: t + ctx.rng.uniform(5_000, 20_000), body: { event: 'cancelled' } });
    }
  }
  let before = ctx.resident.state(ctx.start);
  for (let t = ctx.start; t < ctx.end; t += MIN) {
    const now = ctx.resident.state(t);
    if (now.activity === 'fallen' && before.activity !== 'fallen') {
      events.push({
        t: t + ctx.rng.uniform(MIN, 3 * MIN),
        body: { event: 'pressed', pressDuration: round(ctx.rng.uniform(1, 3), 1) },
      });
    }
    before = now;
  }
  events.sort((a, b) => a.t - b.t);
  for (const e of events) {
    const t = Math.round(e.t);
    if (t < ctx.start || t >= ctx.end) continue;
    yield { t, body: withBattery(ctx, t, { ts: iso(t), ...e.body }) };
  }
};
