// One weighing each morning after the bathroom. Weight drifts slowly (a random walk of ~50 g/day)
// around the resident's baseline; day-to-day scatter ±0.3 kg from hydration and clothing
// (within-person variation of 0.5–1 kg over a week: Orsama et al., Obes Facts 2014;7:200).
import { clamp, createRng, hashSeed, round } from '../random.js';
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const weightScale: Model = function* (ctx) {
  const fat0 = ctx.rng.uniform(24, 36);
  const drift = (day: number) => {
    // The walk is a function of the day, so any day can be computed on its own.
    let w = 0;
    const d0 = Math.floor(day / DAY);
    for (let d = d0 - 60; d <= d0; d++) w += createRng(hashSeed(ctx.deviceId, 'walk', d)).normal(0, 0.05);
    return w;
  };
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    const plan = ctx.resident.plan(day + HOUR);
    const t = Math.round(plan.wake + 12 * MIN + ctx.rng.uniform(0, 10 * MIN));
    if (t < ctx.start || t >= ctx.end || ctx.rng.chance(0.1)) continue; // some mornings are skipped
    const weight = round(clamp(ctx.resident.baseWeightKg + drift(day) + ctx.rng.normal(0, 0.3), 30, 250), 1);
    yield {
      t,
      body: withBattery(ctx, t, { ts: iso(t), weight, bodyFat: round(fat0 + ctx.rng.normal(0, 0.6), 1) }),
    };
  }
};
