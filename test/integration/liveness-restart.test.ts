// Liveness across restarts (issue 17): what liveness knows of each device (silence, a battery
// warning given, the retained status) is kept in the data folder, so a restart in the same folder
// neither forgets an offline device nor warns twice; and one rule for status and metrics: a silent
// device that connects without sending data stays offline in both.
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildApp } from '../../src/app.js';
import { resolveDataPaths } from '../../src/config/data-paths.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { addAccount } from '../../src/registry/edit.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD, type TestDevice, withDevices } from '../helpers/gateway.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { readMetric } from '../helpers/metrics.js';
import { collect, connectDevice, eventually } from '../helpers/mqtt.js';

const lab = useLab();

const QUIET: TestDevice = { id: 'quiet-1', type: 'room-climate', site: 'live', interval: '1s' };
const BATT: TestDevice = { id: 'batt-1', type: 'room-climate', site: 'live' };
const STAFF = 'staff-live';
const topic = (d: TestDevice, channel: string) => `lab/${d.site}/${d.type}/${d.id}/${channel}`;
const reading = (battery?: number) =>
  JSON.stringify({
    ts: new Date().toISOString(),
    temperature: 21.5,
    humidity: 40,
    ...(battery !== undefined ? { battery } : {}),
  });

/** A folder with a registry (the devices and a staff account) that gateways are started in, one after another. */
async function labFolder(devices: TestDevice[]) {
  const dir = await mkdtemp(join(tmpdir(), 'll-restart-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  const data = addAccount(withDevices(EMPTY_REGISTRY, devices), {
    id: STAFF,
    role: 'staff',
    passwordHash: hashSecretSync(PASSWORD, 10),
  });
  await writeRegistryFile(registry, data);
  const db = `test_${Math.random().toString(36).slice(2, 10)}`;
  return { dir, registry, dataDir: join(dir, 'data'), db };
}

/** A gateway (buildApp, port 0) on the folder's registry and data folder; stopped when the test ends. */
async function gatewayIn(folder: Awaited<ReturnType<typeof labFolder>>) {
  const config = loadConfig({
    flags: {
      registry: folder.registry,
      dataDir: folder.dataDir,
      registryPoll: '100ms',
      mqtt: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1' },
      listeners: { ops: { port: 0 } },
      influx: { url: lab.influx.url, db: folder.db },
      writer: { flushInterval: '50ms' },
      jobs: { liveness: { schedule: '* * * * * *' } },
    },
  });
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  const app = buildApp(config, { log: createLogger({ level: 'debug', destination: sink }) });
  onTestFinished(() => app.stop());
  await app.start();
  const url = `mqtt://127.0.0.1:${app.mqttPort}`;
  const metric = async (name: string) => (await readMetric(app.opsPort, name)) ?? Number.NaN;
  return { app, url, lines, metric };
}

const eventsIn = async (dataDir: string) =>
  (await readFile(resolveDataPaths(dataDir).eventsLog, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; deviceId: string; battery?: number });

/** The first retained status a new staff subscriber is handed for the device. */
async function retainedStatus(url: string, device: TestDevice, clientId: string) {
  const staff = await connectDevice(url, STAFF, { clientId: `${STAFF}:${clientId}` });
  onTestFinished(() => void staff.end(true));
  const status = await collect(staff, topic(device, 'status'));
  const [first] = await status.next(1, 5_000);
  return { retain: first?.retain, payload: first?.payload.toString() };
}

/** Runs a gateway until QUIET has sent one reading, disconnected and been judged silent, then stops it. */
async function silentBeforeRestart(folder: Awaited<ReturnType<typeof labFolder>>) {
  const gw = await gatewayIn(folder);
  const device = await connectDevice(gw.url, QUIET.id);
  await device.publishAsync(topic(QUIET, 'telemetry'), reading(), { qos: 1 });
  await device.endAsync();
  await eventually(
    async () => gw.app.liveness.silent.has(QUIET.id),
    (v) => v,
    15_000,
  );
  await gw.app.stop();
  expect((await eventsIn(folder.dataDir)).map((e) => e.event)).toEqual(['device-offline']);
}

describe('liveness survives a restart in the same data folder', () => {
  it('keeps the retained offline of a device that was offline before the restart', {
    timeout: 40_000,
  }, async () => {
    const folder = await labFolder([QUIET]);
    await silentBeforeRestart(folder);
    const gw = await gatewayIn(folder);
    expect(await retainedStatus(gw.url, QUIET, 'after')).toEqual({ retain: true, payload: 'offline' });
    expect(await gw.metric('livinglab_devices_silent')).toBe(1);
  });

  it('gives a device that was offline before the restart its online event when it reports after it', {
    timeout: 40_000,
  }, async () => {
    const folder = await labFolder([QUIET]);
    await silentBeforeRestart(folder);
    const gw = await gatewayIn(folder);
    const staff = await connectDevice(gw.url, STAFF, { clientId: `${STAFF}:live` });
    onTestFinished(() => void staff.end(true));
    const status = await collect(staff, topic(QUIET, 'status'));
    const device = await connectDevice(gw.url, QUIET.id);
    onTestFinished(() => void device.end(true));
    await device.publishAsync(topic(QUIET, 'telemetry'), reading(), { qos: 1 });
    await eventually(
      async () => eventsIn(folder.dataDir),
      (e) => e.length >= 2,
    );
    expect((await eventsIn(folder.dataDir)).map((e) => [e.event, e.deviceId])).toEqual([
      ['device-offline', QUIET.id],
      ['device-online', QUIET.id],
    ]);
    await eventually(
      async () => status.messages.map((m) => m.payload.toString()),
      (s) => s.at(-1) === 'online',
    );
    expect(await gw.metric('livinglab_liveness_transitions_total{state="online"}')).toBe(1);
    expect(await gw.metric('livinglab_devices_silent')).toBe(0);
  });

  it('does not repeat a battery warning given before the restart', { timeout: 40_000 }, async () => {
    const folder = await labFolder([BATT]);
    const first = await gatewayIn(folder);
    const before = await connectDevice(first.url, BATT.id);
    await before.publishAsync(topic(BATT, 'telemetry'), reading(12), { qos: 1 });
    await before.endAsync();
    await eventually(
      async () => eventsIn(folder.dataDir),
      (e) => e.length === 1,
    );
    await first.app.stop();

    const gw = await gatewayIn(folder);
    expect(await gw.metric('livinglab_devices_battery_low')).toBe(1);
    const device = await connectDevice(gw.url, BATT.id);
    onTestFinished(() => void device.end(true));
    // The warning is logged before the PUBACK leaves (liveness.observeBattery runs in the ingest path).
    await device.publishAsync(topic(BATT, 'telemetry'), reading(11), { qos: 1 });
    expect(gw.lines.filter((l) => l.msg === 'battery low')).toEqual([]);
    expect((await eventsIn(folder.dataDir)).map((e) => [e.event, e.battery])).toEqual([['battery-low', 12]]);
    expect(await gw.metric('livinglab_devices_battery_low')).toBe(1);
  });

  it('skips a torn state file with a warning naming it, and starts', { timeout: 30_000 }, async () => {
    const folder = await labFolder([QUIET]);
    const file = resolveDataPaths(folder.dataDir).livenessState;
    await silentBeforeRestart(folder);
    const whole = await readFile(file, 'utf8');
    await writeFile(file, whole.slice(0, Math.floor(whole.length / 2)));
    const gw = await gatewayIn(folder);
    expect(gw.lines.filter((l) => l.msg === 'liveness state unreadable: starting without it')).toEqual([
      expect.objectContaining({ level: 40, file }),
    ]);
    const device = await connectDevice(gw.url, QUIET.id);
    onTestFinished(() => void device.end(true));
    await device.publishAsync(topic(QUIET, 'telemetry'), reading(), { qos: 1 });
    expect(await retainedStatus(gw.url, QUIET, 'torn')).toEqual({ retain: true, payload: 'online' });
    // The next write replaces the torn file with a whole one.
    await gw.app.stop();
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({
      version: 1,
      devices: { [QUIET.id]: {} },
    });
  });
});

describe('one rule for retained status and metrics: a connection without data is not reporting', () => {
  it('a silent device that reconnects without data stays offline, retained and in the metric, until it reports', {
    timeout: 40_000,
  }, async () => {
    const other: TestDevice = { id: 'other-1', type: 'room-climate', site: 'live' };
    const folder = await labFolder([QUIET, other]);
    const gw = await gatewayIn(folder);
    const first = await connectDevice(gw.url, QUIET.id);
    await first.publishAsync(topic(QUIET, 'telemetry'), reading(), { qos: 1 });
    await first.endAsync();
    await eventually(
      async () => gw.app.liveness.silent.has(QUIET.id),
      (v) => v,
      15_000,
    );
    const staff = await connectDevice(gw.url, STAFF, { clientId: `${STAFF}:watch` });
    onTestFinished(() => void staff.end(true));
    const statuses = await collect(staff, 'lab/live/+/+/status');
    const [retained] = await statuses.next(1);
    expect(retained?.payload.toString()).toBe('offline');

    // It connects with a last will, as the README asks devices to.
    const will = {
      topic: topic(QUIET, 'status'),
      payload: Buffer.from('offline'),
      qos: 1 as const,
      retain: true,
    };
    const dropped = await connectDevice(gw.url, QUIET.id, { will });
    // Marker: another device connecting after it; its online comes after anything quiet-1's session gave.
    const marker = await connectDevice(gw.url, other.id);
    onTestFinished(() => void marker.end(true));
    const seenFrom = (d: TestDevice) =>
      statuses.messages.filter((m) => m.topic === topic(d, 'status')).map((m) => m.payload.toString());
    await eventually(
      async () => seenFrom(other),
      (s) => s.includes('online'),
    );
    expect(seenFrom(QUIET)).toEqual(['offline']);
    expect(await gw.metric('livinglab_devices_silent')).toBe(1);
    expect(await gw.metric('livinglab_connected_devices{device_type="room-climate",site="live"}')).toBe(2);
    // The connection dies: its will is a status message, not data, so it does not bring it back either.
    dropped.stream.destroy();
    await eventually(
      async () => seenFrom(QUIET),
      (s) => s.length >= 3, // the will and the gateway's own offline
    );
    expect(seenFrom(QUIET)).toEqual(['offline', 'offline', 'offline']);
    expect(gw.app.liveness.silent.has(QUIET.id)).toBe(true);
    expect(gw.app.liveness.transitions.online).toBe(0);

    const quiet = await connectDevice(gw.url, QUIET.id);
    onTestFinished(() => void quiet.end(true));
    await quiet.publishAsync(topic(QUIET, 'telemetry'), reading(), { qos: 1 });
    await eventually(
      async () => seenFrom(QUIET).at(-1),
      (s) => s === 'online',
    );
    expect(await gw.metric('livinglab_devices_silent')).toBe(0);
    expect(await retainedStatus(gw.url, QUIET, 'later')).toEqual({ retain: true, payload: 'online' });
  });
});

describe('after a crash', () => {
  it('restarts from the state file as of its last write (kill -9): the battery warning and silence are kept', {
    timeout: 90_000,
  }, async () => {
    const gw = await createGatewayProcess({
      influxUrl: lab.influx.url,
      db: `test_${Math.random().toString(36).slice(2, 10)}`,
      devices: [BATT],
    });
    onTestFinished(() => gw.stop());
    await gw.start();
    const device = await connectDevice(gw.mqttUrl(), BATT.id);
    await device.publishAsync(topic(BATT, 'telemetry'), reading(10), { qos: 1 });
    await device.endAsync();
    const file = resolveDataPaths(gw.dataDir).livenessState;
    // Written within the write interval (5 s) of the warning, without a stop.
    await eventually(
      async () => readFile(file, 'utf8').catch(() => ''),
      (t) => t.includes('"batteryLow":true'),
      15_000,
    );
    expect(await gw.kill('SIGKILL')).toBeNull();
    // A torn temporary file of a write the crash interrupted is not the state.
    await appendFile(join(gw.dataDir, '.liveness.json.deadbeef0000.tmp'), '{"version":1,"dev');
    await gw.start();
    expect(gw.output()).toMatch(/liveness state restored/);
    expect(existsSync(join(gw.dataDir, '.liveness.json.deadbeef0000.tmp'))).toBe(false);
    expect(await readMetric(gw.opsPort, 'livinglab_devices_battery_low')).toBe(1);
    const again = await connectDevice(gw.mqttUrl(), BATT.id);
    onTestFinished(() => void again.end(true));
    await again.publishAsync(topic(BATT, 'telemetry'), reading(9), { qos: 1 });
    expect(await readMetric(gw.opsPort, 'livinglab_devices_battery_low')).toBe(1);
    expect(await gw.kill('SIGTERM')).toBe(0);
    expect(gw.output().match(/"msg":"battery low"/g)).toHaveLength(1);
  });
});
