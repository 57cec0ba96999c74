// Indoor climate in one room: air temperature follows the heating schedule (21 °C by day, 18.5 °C
// at night, the Danish Energy Agency's advice for homes) with slow drift; humidity 35–50 % with
// spikes from showers and cooking; CO2 from about 420 ppm outdoors, rising ~150 ppm/h with one
// person in a closed room and decaying when the room is empty (EN 16798-1: category II below
// 800 ppm above outdoors).
import { clamp, round } from '../random.js';
import { ar1, HOUR, iso, type Model, periodic, withBattery } from './common.js';

export const roomClimate: Model = (ctx) => {
  const room = ctx.place ?? 'living-room';
  const tempNoise = ar1(ctx.rng, 0.15, 0.95);
  let temp = 20.5;
  let co2 = 450;
  let humidity = 42;
  let last = ctx.start;
  return periodic(ctx, (t, s) => {
    const hours = Math.max(0, (t - last) / HOUR);
    last = t;
    const h = ctx.hourOf(t);
    const setpoint = h >= 6 && h < 23 ? 21 : 18.5;
    temp += (setpoint - temp) * Math.min(1, hours * 0.8);
    const present = s.room === room;
    co2 = present ? co2 + 150 * hours : 420 + (co2 - 420) * Math.exp(-hours * 1.2);
    const moisture =
      (s.room === 'bathroom' && room === 'bathroom') || (s.activity === 'meal' && room === 'kitchen')
        ? 20
        : 0;
    humidity = 42 + (humidity - 42) * Math.exp(-hours * 2) + moisture * Math.min(1, hours * 4);
    return withBattery(ctx, t, {
      ts: iso(t),
      temperature: round(clamp(temp + (present ? 0.3 : 0) + tempNoise(), -20, 60), 1),
      humidity: round(clamp(humidity + ctx.rng.normal(0, 0.8), 0, 100), 1),
      co2: Math.round(clamp(co2 + ctx.rng.normal(0, 15), 250, 10000)),
      room,
    });
  });
};
