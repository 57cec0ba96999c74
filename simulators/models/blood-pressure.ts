// Home blood pressure twice a day, seated, after waking and in the evening (the ESH protocol of
// morning and evening readings: Stergiou et al., J Hypertens 2021;39:1293). Morning readings run
// ~5 mmHg higher (morning surge). 3 % of readings flag an irregular heartbeat.
import { clamp } from '../random.js';
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const bloodPressure: Model = function* (ctx) {
  const sys0 = ctx.rng.uniform(118, 150);
  const dia0 = ctx.rng.uniform(68, 90);
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    const plan = ctx.resident.plan(day + HOUR);
    for (const [t, surge] of [
      [plan.wake + 30 * MIN + ctx.rng.uniform(0, 15 * MIN), 5],
      [day + 19.5 * HOUR + ctx.rng.uniform(0, 30 * MIN), 0],
    ] as const) {
      if (t < ctx.start || t >= ctx.end) continue;
      const s = ctx.resident.state(t);
      if (s.activity === 'out' || s.activity === 'sleep' || s.activity === 'fallen') continue;
      const systolic = Math.round(clamp(sys0 + surge + ctx.rng.normal(0, 6), 80, 220));
      const diastolic = Math.round(clamp(dia0 + surge / 2 + ctx.rng.normal(0, 4), 45, 130));
      yield {
        t,
        body: withBattery(ctx, t, {
          ts: iso(t),
          systolic,
          diastolic,
          meanArterial: Math.round(diastolic + (systolic - diastolic) / 3),
          pulse: Math.round(ctx.resident.restingHr + 3 + 10 * s.feverC + ctx.rng.normal(0, 3)),
          irregularHeartbeat: ctx.rng.chance(0.03),
          position: 'sitting',
          arm: 'left',
        }),
      };
    }
  }
};
