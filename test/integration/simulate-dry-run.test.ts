// `livinglab simulate --dry-run` as a command: what the fleet would send, byte for byte the same
// for the same seed, without a gateway to talk to.
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

const dryRun = async (seed: string) =>
  runCli([
    'simulate',
    '--fleet',
    'simulators/fleets/demo.yaml',
    '--scenario',
    'simulators/scenarios/incidents.yaml',
    '--dry-run',
    '--seed',
    seed,
    '--start',
    '2026-01-01T00:00:00Z',
    '--duration',
    '3h',
    // Nothing listens here: a dry run must not try to connect.
    '--mqtt-url',
    `mqtt://127.0.0.1:${await freePort()}`,
  ]);

describe('livinglab simulate --dry-run', () => {
  it('prints the same messages, byte for byte, for the same seed, and other messages for another', {
    timeout: 90_000,
  }, async () => {
    const [first, second, other] = await Promise.all([dryRun('7'), dryRun('7'), dryRun('8')]);
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(100);
    expect(second.stdout).toBe(first.stdout);
    expect(other.code).toBe(0);
    expect(other.stdout).not.toBe(first.stdout);
    const messages = lines.map((l) => JSON.parse(l) as { t: string; topic: string; payload: string });
    // Planned times follow --start and --duration; each device's messages come in time order.
    const times = messages.map((m) => m.t);
    expect(times.every((t) => t >= '2026-01-01T00:00:00.000Z' && t < '2026-01-01T03:00:00.000Z')).toBe(true);
    for (const topic of new Set(messages.map((m) => m.topic))) {
      const own = messages.filter((m) => m.topic === topic).map((m) => m.t);
      expect([...own].sort()).toEqual(own);
    }
    expect(messages[0]?.topic).toMatch(/^lab\/demo-\d+\/[a-z-]+\/[a-z0-9-]+\/(telemetry|events|status)$/);
  });
});
