// Ear thermometer, morning and evening. Body temperature 36.6 °C with a circadian swing of ±0.3 °C
// (lowest around 04:00, highest late afternoon: Refinetti & Menaker, Physiol Behav 1992;51:613),
// measurement scatter ±0.15 °C, plus fever from a scenario.
import { clamp, round } from '../random.js';
import { DAY, HOUR, iso, MIN, type Model, withBattery } from './common.js';

export const thermometer: Model = function* (ctx) {
  for (let day = ctx.resident.plan(ctx.start).day; day < ctx.end; day += DAY) {
    const plan = ctx.resident.plan(day + HOUR);
    const times = [plan.wake + 40 * MIN, day + 21 * HOUR];
    // During a fever people measure more often.
    if (ctx.resident.state(day + 14 * HOUR).feverC > 0.3) times.push(day + 14 * HOUR);
    for (const raw of times.sort((a, b) => a - b)) {
      const t = Math.round(raw + ctx.rng.uniform(0, 20 * MIN));
      if (t < ctx.start || t >= ctx.end) continue;
      const s = ctx.resident.state(t);
      if (s.activity === 'out' || s.activity === 'sleep') continue;
      const circadian = -0.3 * Math.cos(((ctx.hourOf(t) - 4) / 24) * 2 * Math.PI);
      const temperature = round(clamp(36.6 + circadian + s.feverC + ctx.rng.normal(0, 0.15), 34, 42), 1);
      yield { t, body: withBattery(ctx, t, { ts: iso(t), temperature, method: 'tympanic' }) };
    }
  }
};
