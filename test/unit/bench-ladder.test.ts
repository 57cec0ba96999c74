// The walk of the e2e ladder (bench/lib/ladder.ts): which rungs a run tries, and which it keeps.
import { describe, expect, it } from 'vitest';
import { climb } from '../../bench/lib/ladder.js';

const RATES = [500, 1000, 2500, 5000, 10000, 15000];
/** A system that passes every rate up to `limit`. */
const upTo = (limit: number) => async (i: number) => {
  const rate = RATES[i] as number;
  return { pass: rate <= limit, result: rate };
};

describe('climb', () => {
  it('a first run climbs from the bottom until a rung fails', async () => {
    const c = await climb(RATES.length, undefined, upTo(5000));
    expect(c.tried.map((i) => RATES[i])).toEqual([500, 1000, 2500, 5000, 10000]);
    expect(c.best?.result).toBe(5000);
  });

  it('a later run resumes at the first sustained rung and climbs from there', async () => {
    const c = await climb(RATES.length, 2, upTo(10000));
    expect(c.tried.map((i) => RATES[i])).toEqual([2500, 5000, 10000, 15000]);
    expect(c.best?.result).toBe(10000);
  });

  it('a later run whose first rung fails walks down until one passes, however far', async () => {
    // Two rungs down: the earlier ladder stopped after one step and left the run without a figure.
    const c = await climb(RATES.length, 4, upTo(2500));
    expect(c.tried.map((i) => RATES[i])).toEqual([10000, 5000, 2500]);
    expect(c.best?.result).toBe(2500);
  });

  it('ends without a sustained rate when even the bottom rung fails', async () => {
    expect(await climb(RATES.length, undefined, upTo(100))).toEqual({ tried: [0] });
    expect(await climb(RATES.length, 2, upTo(100))).toEqual({ tried: [2, 1, 0] });
  });

  it('every rung passing ends at the top', async () => {
    const c = await climb(RATES.length, undefined, upTo(Number.POSITIVE_INFINITY));
    expect(c.tried).toHaveLength(RATES.length);
    expect(c.best?.result).toBe(15000);
  });
});
