// Passive-infrared sensor in one room: "motion: true" when the resident comes into the room,
// "motion: false" when the room has been empty for the sensor's hold time (2 min, as typical PIR
// occupancy sensors). Illuminance follows daylight (~300 lx by day indoors, lamps in the evening,
// ~2 lx at night; EN 12464-1 recommends 100–300 lx in living spaces).
import { clamp, round } from '../random.js';
import { iso, MIN, type Model, sampled, withBattery } from './common.js';

export const motionSensor: Model = (ctx) => {
  const room = ctx.place ?? 'living-room';
  let emptySince: number | undefined;
  let on = false;
  const lux = (t: number, present: boolean) => {
    const h = ctx.hourOf(t);
    const day = h >= 8 && h < 16 ? 300 : h >= 7 && h < 22 ? (present ? 150 : 20) : present ? 60 : 2;
    return round(clamp(day * (1 + ctx.rng.normal(0, 0.15)), 0, 100000), 1);
  };
  return sampled(ctx, MIN, (t, now) => {
    const present = now.room === room;
    if (present && !on) {
      on = true;
      emptySince = undefined;
      return [withBattery(ctx, t, { ts: iso(t), motion: true, illuminance: lux(t, true), room })];
    }
    if (!present && on) {
      emptySince ??= t;
      if (t - emptySince >= 2 * MIN) {
        on = false;
        return [withBattery(ctx, t, { ts: iso(t), motion: false, illuminance: lux(t, false), room })];
      }
    }
    if (present) emptySince = undefined;
    return [];
  });
};
