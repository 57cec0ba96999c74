// The pass rule of the e2e ladder (bench/lib/verdict.ts): what makes a rate "sustained".
import { describe, expect, it } from 'vitest';
import { type RungOutcome, rungFailures, type SpoolSample } from '../../bench/lib/verdict.js';

const MIB = 2 ** 20;
const steady = (t: number): SpoolSample => ({ t, seconds: 0.4, bytes: 2 * MIB });
const everySecond = (f: (t: number) => SpoolSample, n = 60) => Array.from({ length: n }, (_, i) => f(i + 1));

const clean: RungOutcome = {
  achievedShare: 1,
  notAcknowledged: 0,
  disconnects: 0,
  ackTailMs: 40,
  expected: 600_001,
  stored: 600_001,
  probesMissing: 0,
  spool: { samples: everySecond(steady), windowSeconds: 60 },
};

describe('rungFailures', () => {
  it('passes a rung with every reading stored and a steady spool', () => {
    expect(rungFailures(clean)).toEqual([]);
  });

  it('fails a rung whose spool bytes look flat while its oldest reading is 50 s old', () => {
    // What a 30,000/s rung looked like on 2026-11-23 before this rule: bytes flat over the last
    // third, the drain 50 s behind, most latency probes never queryable.
    const samples = everySecond((t) => ({ t, seconds: Math.min(t, 50), bytes: 60 * MIB }));
    expect(rungFailures({ ...clean, probesMissing: 142, spool: { samples, windowSeconds: 60 } })).toEqual([
      '142 probe readings not queryable within 30 s of their publish',
      'spool falling behind: oldest unwritten reading 50.0 s old',
    ]);
  });

  it('fails a rung whose readings wait more than 10 s at a broker in front, though the spools are steady', () => {
    // mosquitto-gw1 at 1,500/s on 2026-11-29: Mosquitto's PUBACK in 0.4 ms, the gateway's spool
    // empty, and the probe's readings queryable after 7.6–9.6 s, queued in the broker.
    expect(rungFailures({ ...clean, frontQueryableP99Ms: 9_600 })).toEqual([]);
    expect(rungFailures({ ...clean, frontQueryableP99Ms: 10_504 })).toEqual([
      'readings waiting at the broker in front: queryable p99 10.5 s (over 10 s)',
    ]);
  });

  it('fails a rung whose spool grows', () => {
    const samples = everySecond((t) => ({ t, seconds: 6, bytes: t * MIB }));
    expect(rungFailures({ ...clean, spool: { samples, windowSeconds: 60 } })).toEqual([
      'spool growing: 40.0 → 60.0 MiB unwritten, oldest 6.0 s',
    ]);
  });

  it('fails a rung whose gateway was too busy to report its spool', () => {
    const samples = [steady(1), steady(2), steady(58)];
    expect(rungFailures({ ...clean, spool: { samples, windowSeconds: 60 } })).toEqual([
      'spool not observed: 1 samples in the last third of the window',
    ]);
    // A 2-s smoke-test window cannot have three samples in its last third, and is not asked to.
    expect(rungFailures({ ...clean, spool: { samples: [], windowSeconds: 2 } })).toEqual([]);
  });

  it('fails a peer that acknowledged readings it never stored, and one that stored extras', () => {
    const peer = { ...clean, spool: undefined };
    expect(rungFailures({ ...peer, stored: 597_270 })).toEqual([
      '2731 acknowledged readings missing in InfluxDB',
    ]);
    expect(rungFailures({ ...peer, stored: 600_002 })).toEqual(['1 more points than acknowledged readings']);
  });

  it('fails a rung the publishers could not offer, or whose acknowledgements trail or fail', () => {
    expect(
      rungFailures({ ...clean, achievedShare: 0.9, notAcknowledged: 3, disconnects: 1, ackTailMs: 17_261 }),
    ).toEqual([
      'publishers reached only 90 % of the rate',
      '3 messages not acknowledged',
      '1 disconnects',
      'last PUBACK 17261 ms after the last publish',
    ]);
  });
});
