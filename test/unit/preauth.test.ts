// Pure bookkeeping before login: per-address token buckets, the pre-authentication byte budget,
// and the backoff after failed logins (issue 13 #2, #10), with an injected clock.
import { describe, expect, it } from 'vitest';
import { createConnectRateLimiter, createPreAuthBudget } from '../../src/broker/preauth.js';
import { createAuthBackoff } from '../../src/registry/auth-backoff.js';

describe('connection rate per address', () => {
  it('allows a burst, then the rate, per address, and counts refusals', () => {
    let t = 0;
    const limiter = createConnectRateLimiter({ ratePerSecond: 2, burst: 3, now: () => t });
    expect([1, 2, 3, 4].map(() => limiter.take('10.0.0.1'))).toEqual([true, true, true, false]);
    expect(limiter.take('10.0.0.2')).toBe(true);
    t = 500; // one token back at 2/s
    expect([limiter.take('10.0.0.1'), limiter.take('10.0.0.1')]).toEqual([true, false]);
    expect(limiter.refused).toBe(2);
  });
  it('forgets full buckets first when it remembers too many addresses', () => {
    let t = 0;
    const limiter = createConnectRateLimiter({ ratePerSecond: 1, burst: 1, maxAddresses: 2, now: () => t });
    expect(limiter.take('a')).toBe(true);
    t = 5000;
    expect(limiter.take('b')).toBe(true);
    expect(limiter.take('c')).toBe(true);
    // b is still empty and remembered; a was full again and forgotten.
    expect(limiter.take('b')).toBe(false);
  });
});

describe('pre-authentication budget', () => {
  it('closes the connections holding the most until under 90 % of the budget, and forgets released ones', () => {
    const budget = createPreAuthBudget({ budgetBytes: 1000 });
    const closed: string[] = [];
    const small = budget.track(() => closed.push('small'));
    const big = budget.track(() => closed.push('big'));
    const mid = budget.track(() => closed.push('mid'));
    small.add(100);
    big.add(500);
    mid.add(300);
    expect(budget.bufferedBytes).toBe(900);
    small.add(200); // 1,100 > 1,000: the biggest goes, 600 left
    expect(closed).toEqual(['big']);
    expect([budget.bufferedBytes, budget.closed, budget.connections]).toEqual([600, 1, 2]);
    mid.release();
    mid.release();
    big.add(10_000); // already closed: no longer counted
    expect(budget.bufferedBytes).toBe(300);
  });
});

describe('login backoff', () => {
  const opts = { usernameAfter: 3, addressAfter: 5, baseMs: 1000, maxMs: 8000 };
  it('locks a username after N failures for a delay that doubles up to the cap; success clears it', () => {
    let t = 0;
    const b = createAuthBackoff({ ...opts, now: () => t });
    expect([b.fail('staff', 'x1'), b.fail('staff', 'x2')]).toEqual([0, 0]);
    expect(b.lockedFor('staff')).toBe(0);
    expect(b.fail('staff', 'x3')).toBe(1000);
    expect(b.lockedFor('staff')).toBe(1000);
    t = 1000;
    expect([
      b.fail('staff', 'x4'),
      b.fail('staff', 'x5'),
      b.fail('staff', 'x6'),
      b.fail('staff', 'x7'),
    ]).toEqual([2000, 4000, 8000, 8000]);
    expect(b.lockedFor('other')).toBe(0);
    b.succeed('staff');
    expect(b.lockedFor('staff')).toBe(0);
  });
  it('delays refusals from an address after its own threshold without locking it', () => {
    const t = 0;
    const b = createAuthBackoff({ ...opts, now: () => t });
    const delays = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'].map((u) => b.fail(u, '10.0.0.9'));
    expect(delays).toEqual([0, 0, 0, 0, 1000, 2000]);
    expect(b.lockedFor('u7')).toBe(0);
  });
  it('forgets failures after a quiet period of four times the cap', () => {
    let t = 0;
    const b = createAuthBackoff({ ...opts, now: () => t });
    for (let i = 0; i < 3; i++) b.fail('staff', 'x');
    t = 4 * 8000 + 1001;
    expect(b.fail('staff', 'x')).toBe(0);
  });
  it('keeps 8-KiB usernames of anonymous clients as short keys, and still locks them', () => {
    const b = createAuthBackoff({ ...opts, addressAfter: 1_000_000 });
    const long = (i: number) => `${'n'.repeat(8000)}-${i}`;
    for (let i = 0; i < 1000; i++) b.fail(long(i), '10.0.0.9');
    // 1,000 names of 8 KB held as themselves were 8 MB of keys.
    expect(b.keyChars).toBeLessThan(100_000);
    for (let i = 0; i < 3; i++) b.fail(long(7), '10.0.0.9');
    expect(b.lockedFor(long(7))).toBeGreaterThan(0);
    expect(b.lockedFor(long(8))).toBe(0);
  });
});
