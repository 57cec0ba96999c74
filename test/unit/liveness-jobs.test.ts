// Untested paths 6 and 7 of issue 15: the liveness webhook's retry, backoff and give-up, devices
// without an interval, the battery warning re-arming; and scheduled jobs as configured (switched
// off, rescheduled), a failing job counted, and housekeeping rotating the events log.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { resolveDataPaths } from '../../src/config/data-paths.js';
import { type ConfigInput, loadConfig } from '../../src/config/load.js';
import { runHousekeeping } from '../../src/jobs/housekeeping.js';
import { createLiveness, type LivenessEvent } from '../../src/jobs/liveness.js';
import { registerJobs } from '../../src/jobs/register.js';
import { createScheduler } from '../../src/jobs/scheduler.js';
import { createLogger } from '../../src/log.js';
import type { Registry } from '../../src/registry/registry.js';
import type { Device } from '../../src/registry/types.js';
import { createRejectsLog } from '../../src/storage/rejects-log.js';
import { eventually } from '../helpers/mqtt.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'll-paths-b-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function capturingLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination: sink }), lines };
}

/** A webhook that answers each POST with the next status of `statuses` (the last one repeats). */
async function webhook(statuses: number[]) {
  const arrivals: { at: number; body: LivenessEvent }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      arrivals.push({ at: Date.now(), body: JSON.parse(body) as LivenessEvent });
      res.writeHead(statuses[Math.min(arrivals.length, statuses.length) - 1] ?? 204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrivals };
}

const device = (id: string, interval?: string): Device =>
  ({ id, type: 'room-climate', site: 'lab', enabled: true, ...(interval ? { interval } : {}) }) as Device;

function registryOf(devices: Device[]): Registry {
  const map = new Map(devices.map((d) => [d.id, d]));
  return { current: () => ({ devices: map }) } as unknown as Registry;
}

async function livenessFor(devices: Device[], hook?: string) {
  const dataDir = await tempDir();
  const { log, lines } = capturingLog();
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const statuses: string[] = [];
  const liveness = createLiveness({
    registry: registryOf(devices),
    dataDir,
    log,
    publishStatus: async (d, s) => {
      statuses.push(`${d.id}:${s}`);
    },
    ...(hook ? { webhook: hook } : {}),
    now: () => clock,
  });
  const advance = (ms: number) => {
    clock += ms;
  };
  const events = async () =>
    (await readFile(resolveDataPaths(dataDir).eventsLog, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LivenessEvent);
  return { liveness, advance, events, lines, statuses };
}

const gaveUp = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg === 'webhook not delivered after retries');

describe('liveness webhook', () => {
  it('retries a failing webhook with a growing backoff until it is accepted', {
    timeout: 20_000,
  }, async () => {
    const hook = await webhook([503, 503, 204]);
    const { liveness, advance, lines } = await livenessFor([device('d1', '1s')], hook.url);
    advance(3_500);
    await liveness.check();
    await eventually(
      async () => hook.arrivals.length,
      (n) => n >= 3,
      15_000,
    );
    expect(hook.arrivals.map((a) => a.body.event)).toEqual([
      'device-offline',
      'device-offline',
      'device-offline',
    ]);
    // Backoff: at least 1 s before the second attempt and at least 2 s before the third.
    const [a, b, c] = hook.arrivals.map((x) => x.at) as [number, number, number];
    expect(b - a).toBeGreaterThanOrEqual(990);
    expect(c - b).toBeGreaterThanOrEqual(1990);
    expect(gaveUp(lines)).toEqual([]);
  });

  it('gives up after 4 attempts and logs that the event was not delivered', { timeout: 30_000 }, async () => {
    const hook = await webhook([500]);
    const { liveness, advance, lines } = await livenessFor([device('d1', '1s')], hook.url);
    advance(3_500);
    await liveness.check();
    await eventually(
      async () => gaveUp(lines).length,
      (n) => n > 0,
      25_000,
    );
    expect(hook.arrivals).toHaveLength(4);
    expect(gaveUp(lines)[0]).toMatchObject({ level: 40, event: 'device-offline', deviceId: 'd1' });
  });

  it('does not retry a webhook that refuses the event (4xx other than 429)', {
    timeout: 10_000,
  }, async () => {
    const hook = await webhook([400]);
    const { liveness, advance, lines } = await livenessFor([device('d1', '1s')], hook.url);
    advance(3_500);
    await liveness.check();
    // The give-up line is logged after the last attempt, so by then every attempt has arrived.
    await eventually(
      async () => gaveUp(lines).length,
      (n) => n > 0,
      8_000,
    );
    expect(hook.arrivals).toHaveLength(1);
  });
});

describe('liveness judgement', () => {
  it('never marks a device without an interval silent', async () => {
    const { liveness, advance, events, statuses } = await livenessFor([
      device('no-interval'),
      device('timed', '1m'),
    ]);
    advance(30 * 86_400_000);
    await liveness.check();
    // The device with an interval proves the check ran and judged this far into the future.
    expect([...liveness.silent]).toEqual(['timed']);
    expect(statuses).toEqual(['timed:offline']);
    expect((await events()).map((e) => e.deviceId)).toEqual(['timed']);
  });

  it('warns of a low battery once, and again only after it recovered above the threshold', async () => {
    const { liveness, events, lines } = await livenessFor([device('b1', '1m')]);
    liveness.observeBattery('b1', 10);
    liveness.observeBattery('b1', 12); // still low: no new warning
    liveness.observeBattery('b1', 25); // above 15 but not recovered (<= 30): not re-armed
    liveness.observeBattery('b1', 11);
    expect(liveness.batteryLow.has('b1')).toBe(true);
    liveness.observeBattery('b1', 80); // a new battery: re-armed
    expect(liveness.batteryLow.has('b1')).toBe(false);
    liveness.observeBattery('b1', 9);
    await eventually(events, (e) => e.some((x) => x.battery === 9), 5_000);
    const low = (await events()).filter((e) => e.event === 'battery-low');
    expect(low.map((e) => e.battery).sort()).toEqual([10, 9].sort());
    // Logged as what it is, never as "device reporting again".
    const logged = lines.filter((l) => l.deviceId === 'b1').map((l) => [l.event, l.msg]);
    expect(logged).toEqual([
      ['battery-low', 'battery low'],
      ['battery-low', 'battery low'],
    ]);
  });
});

describe('scheduled jobs as configured', () => {
  const registered = (jobs: ConfigInput) => {
    const added: [string, string][] = [];
    const config = loadConfig({ flags: { jobs } });
    registerJobs({
      config,
      scheduler: { add: (name, cron) => added.push([name, cron]) },
      liveness: { check: async () => {} },
      registry: registryOf([]),
      schemas: {} as never,
      rejects: {} as never,
      log: createLogger({ level: 'silent' }),
    });
    return added;
  };

  it('adds every job on its default schedule', () => {
    expect(registered({})).toEqual([
      ['liveness', '* * * * *'],
      ['quality-report', '30 0 * * *'],
      ['housekeeping', '15 3 * * *'],
    ]);
  });

  it('leaves out a switched-off job and uses a configured schedule', () => {
    expect(
      registered({
        liveness: { enabled: false },
        report: { schedule: '0 6 * * *' },
        housekeeping: { schedule: '*/10 * * * * *' },
      }),
    ).toEqual([
      ['quality-report', '0 6 * * *'],
      ['housekeeping', '*/10 * * * * *'],
    ]);
  });

  it('counts a failing run as a failure and logs it, without stopping the schedule', {
    timeout: 15_000,
  }, async () => {
    const { log, lines } = capturingLog();
    const scheduler = createScheduler({ log });
    onTestFinished(() => scheduler.stop());
    scheduler.add('boom', '* * * * * *', async () => {
      throw new Error('job exploded');
    });
    scheduler.add('fine', '* * * * * *', async () => {});
    await eventually(
      async () => scheduler.stats.get('boom')?.runs ?? 0,
      (n) => n >= 2,
      10_000,
    );
    const boom = scheduler.stats.get('boom');
    expect(boom?.failures).toBeGreaterThanOrEqual(1);
    expect(boom?.failures).toBeGreaterThanOrEqual((boom?.runs ?? 0) - 1);
    expect(scheduler.stats.get('fine')?.failures).toBe(0);
    expect(lines.find((l) => l.msg === 'scheduled job failed')).toMatchObject({ job: 'boom', level: 50 });
  });
});

describe('housekeeping', () => {
  it('goes on with the other steps when one fails, then fails the run naming that step', async () => {
    const dataDir = await tempDir();
    const paths = resolveDataPaths(dataDir);
    const rejects = createRejectsLog({ dataDir });
    await rejects.start();
    onTestFinished(() => rejects.stop());
    const log = createLogger({ level: 'silent' });
    const now = Date.parse('2026-03-04T05:06:07.089Z');
    await writeFile(paths.eventsLog, '{"event":"device-offline"}\n');
    // The events log cannot be renamed: a non-empty folder holds its rotated name.
    await mkdir(join(paths.rotatedLog('events', new Date(now)), 'x'), { recursive: true });
    const old = join(dataDir, 'rejects-2020-01-01T00-00-00-000Z.ndjson');
    await writeFile(old, '{}\n');
    await expect(runHousekeeping({ dataDir, rejects, retentionMs: 86_400_000, log, now })).rejects.toThrow(
      /^housekeeping incomplete: rotate events log: E/,
    );
    // The old rotated log was still deleted, and the rejects log still takes lines.
    expect(await stat(old).catch(() => undefined)).toBeUndefined();
    await rejects.append({
      receivedAt: '2026-03-04T05:06:08.000Z',
      clientId: 'd1',
      topic: 'lab/a/b/d1/telemetry',
      rejections: [{ reason: 'json', errors: [] }],
      payload: Buffer.from('x'),
    });
    expect(await readFile(paths.rejectsLog, 'utf8')).toContain('"clientId":"d1"');
  });

  it('rotates a non-empty events log to a dated file and leaves an empty one alone', async () => {
    const dataDir = await tempDir();
    const paths = resolveDataPaths(dataDir);
    const rejects = createRejectsLog({ dataDir });
    const log = createLogger({ level: 'silent' });
    const now = Date.parse('2026-03-04T05:06:07.089Z');
    const line = `${JSON.stringify({ event: 'device-offline', deviceId: 'd1' })}\n`;
    await writeFile(paths.eventsLog, line);
    const first = await runHousekeeping({ dataDir, rejects, retentionMs: 86_400_000, log, now });
    const target = paths.rotatedLog('events', new Date(now));
    expect(first.rotated).toContain(target);
    expect(await readFile(target, 'utf8')).toBe(line);
    expect(await stat(paths.eventsLog).catch(() => undefined)).toBeUndefined();
    await writeFile(paths.eventsLog, '');
    const second = await runHousekeeping({ dataDir, rejects, retentionMs: 86_400_000, log, now: now + 1000 });
    expect(second.rotated).toEqual([]);
    expect(await readFile(paths.eventsLog, 'utf8')).toBe('');
  });
});
