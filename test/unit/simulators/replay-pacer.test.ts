import { describe, expect, it } from 'vitest';
import { createReplayPacer, type ReplayClock } from '../../../simulators/recording.js';

/** A clock that only moves when the pacer sleeps, or when the test says time passed. */
function fakeClock() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  const clock: ReplayClock = {
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
  return { clock, sleeps, pass: (ms: number) => (now += ms) };
}

describe('replay pacing', () => {
  it('spreads recorded times over real time divided by the speed', async () => {
    const { clock, sleeps } = fakeClock();
    const pace = createReplayPacer(4, clock);
    const t0 = Date.parse('2026-03-01T10:00:00Z');
    for (const offset of [0, 1000, 1000, 3000, 10_000]) await pace(t0 + offset);
    // 0 → no wait; 1 s at 4× → 250 ms; same time → none; 3 s → 500 ms more; 10 s → 1750 ms more.
    expect(sleeps).toEqual([250, 500, 1750]);
  });

  it('does not wait for a message that is already late, nor make later ones wait to catch up', async () => {
    const { clock, sleeps, pass } = fakeClock();
    const pace = createReplayPacer(1, clock);
    await pace(0);
    pass(5000); // publishing took 5 s of real time
    await pace(2000);
    await pace(6000);
    expect(sleeps).toEqual([1000]);
  });
});
