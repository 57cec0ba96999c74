// `livinglab serve` as an operator runs it (the built CLI as a child process, issue 17): one gateway
// per data folder, a lock that dies with its process, start-up failures that exit at once with the
// cause, and signals that stop the process even while it is still starting.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { withDevices } from '../helpers/gateway.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { closedPortUrl } from '../helpers/ports.js';
import { type ServeProcess, spawnServe } from '../helpers/serve-process.js';

vi.setConfig({ testTimeout: 90_000 });

const lab = useLab();
const DEVICE = { id: 'lock-ox-1', type: 'pulse-oximeter', site: 'lock' };
const BANNER =
  /MQTT on port (\d+), HTTP on https?:\/\/localhost:(\d+)\S*, ops \(\/readyz, \/metrics\) on \S+:(\d+)/;
const figure = (name: string, f: object) => console.log(`[serve] ${name}: ${JSON.stringify(f)}`);

let dir = '';
let registry = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'll-serve-'));
  registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, withDevices(EMPTY_REGISTRY, [DEVICE]));
  return () => rm(dir, { recursive: true, force: true });
});

function serve(dataDir: string, influxUrl: string, extra: string[] = []): ServeProcess {
  const p = spawnServe([
    ...[
      '--registry',
      registry,
      '--data-dir',
      dataDir,
      '--influx-url',
      influxUrl,
      '--influx-db',
      'serve_proc',
    ],
    ...['--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-host', '127.0.0.1', '--http-port', '0'],
    ...['--ops-port', '0'],
    ...['--flush-interval', '100ms', ...extra],
  ]);
  onTestFinished(() => p.kill());
  return p;
}

async function occupiedPort(): Promise<number> {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
  onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const address = blocker.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** An "InfluxDB" that accepts connections and never answers: a start-up that hangs on the database. */
async function silentServerUrl(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  onTestFinished(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

/** One pulse oximeter for ten simulated minutes, in one real second. */
const TINY_FLEET = [
  'name: tiny',
  'seed: 1',
  'start: now-10m',
  'duration: 10m',
  'speed: 600',
  'vendor: simulator',
  'sites:',
  '  - id: tiny-01',
  '    residents:',
  '      - id: p-tiny-01',
  '        devices:',
  '          - { type: pulse-oximeter, interval: 1m }',
  '',
].join('\n');

const reading = (spo2: number) => JSON.stringify({ ts: new Date().toISOString(), spo2, pulse: 70 });

describe('one gateway per data folder', () => {
  it('a second gateway on the same data folder exits non-zero within 5 s, naming the first', async () => {
    const dataDir = join(dir, 'two');
    const first = serve(dataDir, lab.influx.url);
    await first.waitFor(BANNER);
    const second = serve(dataDir, lab.influx.url);
    const exit = await second.exited;
    figure('second gateway refused', exit);
    expect(exit.code).toBe(2);
    expect(exit.ms).toBeLessThan(5000);
    expect(second.output()).toMatch(
      new RegExp(
        `data folder .*two is in use by another gateway: pid ${first.pid} on host .*, started \\d{4}-`,
      ),
    );
    expect(second.output()).not.toMatch(BANNER);
    // The first one is untouched and still serving.
    const port = Number(BANNER.exec(first.output())?.[2]);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it('after kill -9 of the first, a new one starts at once and replays the spool', async () => {
    const dataDir = join(dir, 'crash');
    // The first gateway writes to an InfluxDB that is down: the acknowledged reading stays in its spool.
    const first = serve(dataDir, await closedPortUrl());
    const mqttPort = Number((await first.waitFor(BANNER))[1]);
    const device = await connectDevice(`mqtt://127.0.0.1:${mqttPort}`, DEVICE.id);
    await device.publishAsync('lab/lock/pulse-oximeter/lock-ox-1/telemetry', reading(93), { qos: 1 });
    device.end(true);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const second = serve(dataDir, lab.influx.url);
    await second.waitFor(BANNER);
    const rows = await eventually(
      () =>
        lab.influx
          .query<{ spo2: number }>(
            'serve_proc',
            `SELECT spo2 FROM pulse_oximeter WHERE device_id = 'lock-ox-1'`,
          )
          .catch(() => []),
      (r) => r.length > 0,
      30_000,
    );
    expect(rows.map((r) => r.spo2)).toEqual([93]);
  });

  it('report and simulate --verify read the data folder beside a running gateway', async () => {
    const dataDir = join(dir, 'readers');
    const gw = serve(dataDir, lab.influx.url);
    const mqttPort = Number((await gw.waitFor(BANNER))[1]);
    const fleet = join(dir, 'tiny.yaml');
    await writeFile(fleet, TINY_FLEET);
    const common = ['--registry', registry, '--data-dir', dataDir, '--influx-url', lab.influx.url];
    const sim = await runCli([
      ...['simulate', '--fleet', fleet, '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--verify'],
      ...[...common, '--influx-db', 'serve_proc'],
    ]);
    expect(sim.stdout + sim.stderr).toContain('verify: OK');
    expect(sim.code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    const report = await runCli(['report', '--date', today, ...common, '--influx-db', 'serve_proc']);
    expect(report.stderr).toBe('');
    expect(report.stdout).toContain(join(dataDir, 'reports', `${today}.md`));
    expect(gw.child.exitCode).toBeNull();
  });
});

describe('start-up failures exit at once, naming the cause', () => {
  it.each([
    ['MQTT', '--mqtt-port'],
    ['HTTP', '--http-port'],
  ] as const)(
    'a taken %s port: exit 2 within 5 s with the port and %s, no busy loop',
    async (which, flag) => {
      const taken = await occupiedPort();
      const gw = serve(join(dir, `port-${which}`), await closedPortUrl(), [flag, String(taken)]);
      const exit = await gw.exited;
      figure(`${which} port taken`, exit);
      expect(exit.code).toBe(2);
      // From its first output: loading the code alone took 5 s on 2 cores shared by a load of 25.
      expect(exit.msAfterLoad).toBeLessThan(5000);
      // A spinning process would not exit at all; what it used is reported (ticks from /proc).
      expect(exit.cpuMs).toBeLessThan(exit.ms);
      expect(gw.output()).toContain(`livinglab: ${which} listener on 127.0.0.1:${taken}`);
      expect(gw.output()).toContain(flag);
    },
  );

  it('a data folder that cannot be created: exit 2 naming the folder and the fix', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    const gw = serve(join(file, 'data'), await closedPortUrl());
    const exit = await gw.exited;
    expect(exit.code).toBe(2);
    expect(gw.output()).toMatch(
      /^livinglab: data folder .*a-file\/data: cannot create its lock folder: .*--data-dir/m,
    );
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s while start-up waits on an InfluxDB that never answers: exits 0 within 5 s',
    async (signal) => {
      const gw = serve(join(dir, `signal-${signal}`), await silentServerUrl());
      await gw.waitFor(/"registry loaded"/);
      const sent = Date.now();
      gw.child.kill(signal);
      const exit = await gw.exited;
      figure(`${signal} during start-up`, { ...exit, afterSignalMs: Date.now() - sent });
      expect(exit.code).toBe(0);
      expect(Date.now() - sent).toBeLessThan(5000);
      expect(gw.output()).not.toMatch(BANNER);
    },
  );
});

describe('the lab demo (`npm run lab`: serve with the demo fleet)', () => {
  it('prints readable log lines with --log-format pretty and no Node warning while the fleet connects', async () => {
    const demo = new URL('../../simulators/fleets/demo.yaml', import.meta.url).pathname;
    const gw = serve(join(dir, 'demo'), await closedPortUrl(), ['--fleet', demo, '--log-format', 'pretty']);
    const opsPort = Number((await gw.waitFor(BANNER))[3]);
    // Every demo device connected: each one has slept on the fleet's abort signal by then.
    const connected = async () =>
      (await scrapeMetrics(opsPort))
        .split('\n')
        .filter((l) => l.startsWith('livinglab_connected_devices{'))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    await eventually(connected, (n) => n >= 24, 60_000);
    // The gateway counts a connection before its device reads the CONNACK and starts waiting on the
    // signal: a warning, if any, is printed within moments of that. Allow it 3 s to show.
    await new Promise<void>((resolve) => {
      const deadline = Date.now() + 3000;
      const poll = setInterval(() => {
        if (gw.output().includes('Warning:') || Date.now() > deadline) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    expect(gw.output()).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}\[registry\] registry loaded file=\S+ devices=\d+/m,
    );
    expect(gw.output()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}InfluxDB not reachable at start; .* err=/m);
    expect(gw.output()).not.toMatch(/^\{"level"/m);
    expect(gw.output()).not.toContain('Warning:');
  });
});
