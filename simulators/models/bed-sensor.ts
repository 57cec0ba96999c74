// Under-mattress sensor, mains powered, reporting each interval. While the resident sleeps: heart
// rate below resting (~−7/min), respiration 12–16/min (Cretikos et al., Med J Aust 2008;188:657),
// +2/min per °C of fever, and a movement index that rises with restless (feverish) nights.
import { clamp } from '../random.js';
import { ar1, HR_DELTA, iso, type Model, periodic } from './common.js';

export const bedSensor: Model = (ctx) => {
  const hrNoise = ar1(ctx.rng, 2.5);
  const rrNoise = ar1(ctx.rng, 1);
  return periodic(ctx, (t, s) => {
    const occupied = s.activity === 'sleep';
    if (!occupied) return { ts: iso(t), occupied: false };
    return {
      ts: iso(t),
      occupied: true,
      heartRate: Math.round(
        clamp(ctx.resident.restingHr + HR_DELTA.sleep + 10 * s.feverC + hrNoise(), 35, 150),
      ),
      respirationRate: Math.round(clamp(14 + 2 * s.feverC + rrNoise(), 6, 40)),
      movement: Math.round(clamp(8 + 15 * s.feverC + ctx.rng.normal(0, 4), 0, 100)),
    };
  });
};
