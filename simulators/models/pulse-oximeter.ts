// Pulse oximeter worn during the day (and overnight for some protocols). Pulse follows activity
// and fever; SpO2 sits 1 point lower asleep and drops to the scenario's target in hypoxia.
// Sources: normal SpO2 95–100 % at sea level (WHO Pulse Oximetry Training Manual, 2011); resting
// heart rate of older adults 60–80/min; +~10/min per °C of fever (Karjalainen & Viitasalo, Acta
// Med Scand 1986;220:421). Perfusion index 0.3–10 % in adults (Lima et al., Crit Care Med 2002).
import { clamp, round } from '../random.js';
import { ar1, HR_DELTA, iso, type Model, periodic, withBattery } from './common.js';

export const pulseOximeter: Model = (ctx) => {
  const hrNoise = ar1(ctx.rng, 3);
  const spo2Noise = ar1(ctx.rng, 0.7);
  const piNoise = ar1(ctx.rng, 0.8, 0.9);
  return periodic(ctx, (t, s) => {
    if (s.activity === 'out') return undefined;
    const pulse = Math.round(
      clamp(ctx.resident.restingHr + HR_DELTA[s.activity] + 10 * s.feverC + hrNoise(), 35, 180),
    );
    const target = s.hypoxiaSpo2 ?? ctx.resident.baseSpo2 - (s.activity === 'sleep' ? 1 : 0);
    const spo2 = Math.round(clamp(target + spo2Noise(), 70, 100));
    const perfusionIndex = round(clamp(3.5 + piNoise(), 0.4, 12), 1);
    return withBattery(ctx, t, { ts: iso(t), spo2, pulse, perfusionIndex, probe: 'finger' });
  });
};
