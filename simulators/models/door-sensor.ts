// Contact sensor on the front door: open/close when the resident goes out and comes back, and
// during night-time wandering (scenario). A door stays open 5–40 s when someone passes.
import { iso, MIN, type Model, sampled, withBattery } from './common.js';

export const doorSensor: Model = (ctx) => {
  const door = ctx.place ?? 'front';
  let wanderingOpened = false;
  const passage = (t: number) => {
    const closeAt = t + Math.round(ctx.rng.uniform(5_000, 40_000));
    return [
      withBattery(ctx, t, { ts: iso(t), open: true, door }),
      withBattery(ctx, closeAt, { ts: iso(closeAt), open: false, door }),
    ];
  };
  return sampled(ctx, MIN, (t, now, before) => {
    const leaving = now.activity === 'out' && before.activity !== 'out';
    const back = now.activity !== 'out' && before.activity === 'out';
    if (leaving || back) return passage(t);
    // Wandering at night: the resident tries the front door once.
    const wandering = now.activity === 'active' && ctx.hourOf(t) < 5 && now.room === 'hall';
    if (wandering && !wanderingOpened) {
      wanderingOpened = true;
      return passage(t);
    }
    if (ctx.hourOf(t) >= 5 && ctx.hourOf(t) < 6) wanderingOpened = false;
    return [];
  });
};
