// A smoke run of the bench scripts at a tiny load: they run, and they count right. No timing is
// asserted (issue #7): figures come from `npm run bench`, never from the test suite.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
// Raw JSON of these tiny runs goes to a temporary directory, not among the real runs.
const RESULTS = mkdtempSync(join(tmpdir(), 'll-bench-smoke-'));
afterAll(() => rmSync(RESULTS, { recursive: true, force: true }));

async function bench(script: string, args: string[]) {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', `bench/${script}`, ...args], {
    cwd: ROOT,
    env: { ...process.env, BENCH_RESULTS_DIR: RESULTS },
    timeout: 180_000,
    maxBuffer: 16 * 2 ** 20,
  });
  const raw = /raw: (\S+\.json)/.exec(stdout)?.[1];
  if (!raw?.startsWith(RESULTS)) throw new Error(`no raw result in ${RESULTS}:\n${stdout}`);
  return { stdout, result: JSON.parse(readFileSync(raw, 'utf8')) };
}

// One run, four devices, one publisher process: enough to count, too little to time.
const TINY = ['--runs', '1', '--devices', '4', '--processes', '1'];

describe('bench scripts (smoke)', () => {
  it('e2e: every acknowledged reading is counted in InfluxDB, for the gateway and the plain peer', async () => {
    const { stdout, result } = await bench('e2e.ts', [
      '--systems',
      'gateway,plain',
      '--rates',
      '100',
      '--duration',
      '2s',
      '--warmup',
      '1s',
      ...TINY,
      '--no-half',
    ]);
    expect(stdout).toContain('| gateway | 100 (100–100)');
    const rungs = result.rungs as {
      system: string;
      pass: boolean;
      sent: number;
      acked: number;
      readingsAcked: number;
      probeAcked: number;
      stored: number;
    }[];
    expect(rungs.map((r) => r.system)).toEqual(['gateway', 'plain']);
    for (const r of rungs) {
      expect(r.sent).toBe(300);
      expect(r.acked).toBe(300);
      expect(r.stored).toBe(r.readingsAcked + r.probeAcked);
      // r.pass is a latency verdict that depends on the machine: the counts above are what is checked.
    }
  }, 180_000);

  it('e2e batch mode counts 50 readings per message', async () => {
    const { result } = await bench('e2e.ts', [
      '--mode',
      'batch',
      '--rates',
      '1000',
      '--duration',
      '2s',
      '--warmup',
      '0s',
      ...TINY,
      '--no-half',
    ]);
    const [r] = result.rungs as { sent: number; readingsAcked: number; probeAcked: number; stored: number }[];
    expect(r?.sent).toBe(40);
    expect(r?.readingsAcked).toBe(2000);
    expect(r?.stored).toBe(2000 + (r?.probeAcked ?? 0));
  }, 180_000);

  it('broker and stage scripts produce their tables', async () => {
    const broker = await bench('broker.ts', ['--rate', '200', '--duration', '1s', ...TINY]);
    const runs = broker.result.runs as Record<string, { sent: number; acked: number }[]>;
    expect(Object.keys(runs).sort()).toEqual(['aedes', 'mosquitto']);
    // 200 messages a second for one second, every one acknowledged by each broker.
    for (const system of ['aedes', 'mosquitto'])
      expect(runs[system], system).toMatchObject([{ sent: 200, acked: 200 }]);
    const stages = await bench('stages.ts', ['--only', 'parse,spool', '--runs', '1', '--duration', '200ms']);
    const raw = stages.result.raw as Record<string, number[]>;
    expect(Object.keys(raw)).toHaveLength(5);
    // One figure per stage for the one run, each a finite positive number.
    for (const [stage, values] of Object.entries(raw)) {
      expect(values, stage).toHaveLength(1);
      expect(Number.isFinite(values[0]) && (values[0] as number) > 0, stage).toBe(true);
    }
    expect(stages.stdout).toContain('spool appends (group commit, O_DSYNC)');
  }, 180_000);

  it('TLS (issue 16): e2e over mqtts:// stores every acknowledged reading; the handshake bench reports each phase', async () => {
    const e2e = await bench('e2e.ts', [
      ...['--systems', 'gateway-tls', '--rates', '100', '--duration', '2s', '--warmup', '1s'],
      ...TINY,
      '--no-half',
    ]);
    const [r] = e2e.result.rungs as {
      system: string;
      sent: number;
      acked: number;
      readingsAcked: number;
      probeAcked: number;
      stored: number;
    }[];
    expect(r).toMatchObject({ system: 'gateway-tls', sent: 300, acked: 300 });
    expect(r?.stored).toBe((r?.readingsAcked ?? 0) + (r?.probeAcked ?? 0));
    const handshakes = await bench('tls.ts', ['--connections', '20', '--concurrency', '5', '--runs', '1']);
    const [phases] = handshakes.result.runs as Record<string, { connections: number; failed: number }>[];
    expect(Object.keys(phases ?? {}).sort()).toEqual(['tcp', 'tcp-first-login', 'tls']);
    for (const [name, p] of Object.entries(phases ?? {}))
      expect(p, name).toMatchObject({
        connections: 20,
        failed: 0,
        perSecond: expect.any(Number),
        gatewayCpuMs: expect.any(Number),
        clientCpuMs: expect.any(Number),
        gatewayCpuPercent: expect.any(Number),
      });
    expect(handshakes.stdout).toMatch(
      /TLS \/ plain TCP connections per second \(cached credentials\): measured \d/,
    );
  }, 60_000);

  it('connections: memory figures, every acknowledged reading stored, a heap snapshot taken with the devices connected', async () => {
    const snapshots = join(RESULTS, 'heap');
    const { result } = await bench('connections.ts', [
      '--devices',
      '60',
      '--duration',
      '5s',
      '--runs',
      '1',
      '--processes',
      '1',
      '--heap-snapshot',
      snapshots,
    ]);
    const file = (result.runs as { heapSnapshot?: string }[])[0]?.heapSnapshot;
    expect(file?.startsWith(snapshots)).toBe(true);
    const heap = await run(
      process.execPath,
      ['--import', 'tsx', 'bench/heap.ts', file as string, '--top', '500'],
      {
        cwd: ROOT,
        maxBuffer: 16 * 2 ** 20,
      },
    );
    // One aedes Client per connected device (and none of ours has that name).
    const clients = Number(/\| object:Client \| (\d+) \|/.exec(heap.stdout)?.[1]);
    expect(clients).toBeGreaterThanOrEqual(60);
    const [r] = result.runs as {
      idleRssMiB: number;
      connectedRssMiB: number;
      lateRssMiB: number;
      readingsAcked: number;
      stored: number;
    }[];
    expect(r?.readingsAcked).toBeGreaterThan(0);
    expect(r?.stored).toBe(r?.readingsAcked);
    for (const v of [r?.idleRssMiB, r?.connectedRssMiB, r?.lateRssMiB]) expect(v).toBeGreaterThan(0);
  }, 180_000);
  it('Mosquitto in front (issue 19): two gateways behind it store every reading Mosquitto acknowledged; CPU of each part', async () => {
    const e2e = await bench('e2e.ts', [
      ...['--systems', 'mosquitto-gw2', '--rates', '100', '--duration', '1s', '--warmup', '0s'],
      ...TINY,
      '--no-half',
    ]);
    const [r] = e2e.result.rungs as {
      system: string;
      sent: number;
      acked: number;
      readingsAcked: number;
      probeAcked: number;
      stored: number;
      usage: Record<string, { cpuPercent: number }>;
    }[];
    expect(r).toMatchObject({ system: 'mosquitto-gw2', sent: 100, acked: 100 });
    expect(r?.stored).toBe((r?.readingsAcked ?? 0) + (r?.probeAcked ?? 0));
    expect(Object.keys(r?.usage ?? {}).sort()).toEqual([
      'gateway 1',
      'gateway 2',
      'influxd',
      'mosquitto',
      'publisher 1',
    ]);
    expect(e2e.stdout).toMatch(/\| mosquitto-gw2 \| gateway 2 \| [\d.,]+ /);
    const conn = await bench('front-connections.ts', [
      ...['--devices', '30', '--shards', '1', '--duration', '3s', '--processes', '1', '--sources', '3'],
    ]);
    const o = conn.result as {
      stored: number;
      result: { readingsAcked: number; disconnects: number };
      measured: { role: string; connectedRssMiB: number }[];
    };
    expect(o.result.readingsAcked).toBeGreaterThan(0);
    expect(o.stored).toBe(o.result.readingsAcked);
    expect(o.result.disconnects).toBe(0);
    expect(o.measured.map((p) => p.role)).toEqual(['mosquitto 1', 'gateway 1']);
    for (const p of o.measured) expect(p.connectedRssMiB, p.role).toBeGreaterThan(0);
  }, 120_000);
});
