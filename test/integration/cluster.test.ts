// Several gateways behind Debian's Mosquitto 2.0 (README, "Scaling past one machine"): the broker
// loads the password_file and acl_file the gateway writes from its registry, the gateway's own
// account among them (role gateway); two `livinglab serve --source external` processes, each with
// its own data folder and spool, share one subscription group and one real influxd. Devices log in
// at the broker with their registry passwords (MQTT 5 and 3.1.1), a kill -9 of one gateway under a
// fleet loses nothing acknowledged, and the once-per-lab jobs run on the leader only.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createExternalSource } from '../../src/ingest/sources/external.js';
import { createLogger } from '../../src/log.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { toSnapshot } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD, type TestDevice, withDevices } from '../helpers/gateway.js';
import { createGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto-acl.js';
import { collect, connectDevice, eventually, mosquittoPub, settled } from '../helpers/mqtt.js';
import { compareWithInflux, startFleet } from '../helpers/publishers.js';

vi.setConfig({ testTimeout: 120_000 });

const GATEWAY_ACCOUNT = 'cl-gw';
const ox = (id: string): TestDevice => ({ id, type: 'pulse-oximeter', site: 'cl' });
const V5 = ox('cl-v5');
const V4 = ox('cl-v4');
const PROBE = ox('cl-probe');
const QUIET: TestDevice = { id: 'cl-quiet', type: 'room-climate', site: 'cl', interval: '1s' };
const FLEET = Array.from({ length: 6 }, (_, i) => ox(`cl-fleet-${i}`));
const DEVICES = [V5, V4, PROBE, QUIET, ...FLEET];
const topic = (d: TestDevice, channel = 'telemetry') => `lab/${d.site}/${d.type}/${d.id}/${channel}`;
const reading = (spo2: number) =>
  JSON.stringify({ ts: new Date(Date.now() - 30_000).toISOString(), spo2, pulse: 70 });
const DB = 'cluster';
const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();

const lab = useLab();
let dir: string;
let mosquitto: Mosquitto;
let leader: GatewayProcess;
let follower: GatewayProcess;

/** A gateway process in external mode: the gateways' listener, the shared group, its own client id. */
async function gateway(name: string, isLeader: boolean): Promise<GatewayProcess> {
  const gw = await createGatewayProcess({
    ...{ influxUrl: lab.influx.url, db: DB, devices: DEVICES },
    env: {
      LIVINGLAB_BROKER_PASSWORD: PASSWORD,
      LIVINGLAB_EXTERNAL_USERNAME: GATEWAY_ACCOUNT,
      LIVINGLAB_JOBS_LIVENESS_SCHEDULE: '* * * * * *',
    },
    args: [
      ...['--source', 'external', '--broker-url', mosquitto.gatewayUrl],
      ...['--broker-client-id', `${GATEWAY_ACCOUNT}:${name}`, '--broker-group', 'cluster'],
      ...(isLeader ? [] : ['--no-jobs-leader']),
    ],
  });
  // Both last ran their daily jobs three days ago: each catches up at start, if it runs them at all.
  mkdirSync(gw.dataDir, { recursive: true });
  writeFileSync(
    join(gw.dataDir, 'jobs.json'),
    JSON.stringify({
      'quality-report': { lastRunAt: threeDaysAgo },
      housekeeping: { lastRunAt: threeDaysAgo },
    }),
  );
  return gw;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'll-cluster-'));
  const registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, withDevices(EMPTY_REGISTRY, DEVICES));
  const add = await runCli(
    [
      'accounts',
      'add',
      '--id',
      GATEWAY_ACCOUNT,
      '--role',
      'gateway',
      '--password-stdin',
      '--registry',
      registry,
    ],
    { input: PASSWORD },
  );
  expect(add.code, add.stderr).toBe(0);
  const out = join(dir, 'mosquitto');
  const files = await runCli(['broker', 'mosquitto', '--out', out, '--registry', registry]);
  expect(files.code, files.stderr).toBe(0);
  expect(readFileSync(join(out, 'acl_file'), 'utf8')).toContain(
    `user ${GATEWAY_ACCOUNT}\ntopic read lab/#\ntopic write lab/+/+/+/rejected\ntopic write lab/+/+/+/status\n`,
  );
  mosquitto = await startMosquitto(out, join(out, 'mosquitto.pid'), { gatewayListener: true, keep: true });
  leader = await gateway('a', true);
  follower = await gateway('b', false);
  await Promise.all([leader.start(), follower.start()]);
}, 120_000);
afterAll(async () => {
  await Promise.all([leader?.stop(), follower?.stop()]);
  await mosquitto?.stop();
  await rm(dir, { recursive: true, force: true });
});

const spo2Of = async (d: TestDevice) =>
  (
    await lab.influx.query<{ spo2: number }>(
      DB,
      `SELECT spo2 FROM pulse_oximeter WHERE device_id = '${d.id}'`,
    )
  ).map((r) => r.spo2);
const pub = (user: string, t: string, message: string, version = 'mqttv5') =>
  mosquittoPub(
    ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-V', version, '-q', '1'].concat([
      '-u',
      user,
      '-P',
      PASSWORD,
      '-t',
      t,
      '-m',
      message,
    ]),
  );
const events = (gw: GatewayProcess) => {
  const file = join(gw.dataDir, 'events.ndjson');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; deviceId: string });
};

describe('two gateways behind Mosquitto 2.0 with the generated password_file and acl_file', () => {
  it('stores readings of an MQTT 5 and an MQTT 3.1.1 device; refuses a device on another device topic; answers an invalid reading on rejected', async () => {
    expect((await pub(V5.id, topic(V5), reading(97))).stderr).toBe('');
    const v4 = await connectDevice(mosquitto.url, V4.id, { protocolVersion: 4 });
    onTestFinished(() => v4.endAsync());
    await v4.publishAsync(topic(V4), reading(96), { qos: 1 });
    await eventually(
      () => spo2Of(V5),
      (v) => v.length === 1,
      20_000,
    );
    await eventually(
      () => spo2Of(V4),
      (v) => v.length === 1,
      20_000,
    );
    expect(await spo2Of(V5)).toEqual([97]);
    expect(await spo2Of(V4)).toEqual([96]);

    // The broker refuses it through our acl_file (MQTT 5 PUBACK 135): no gateway ever sees it.
    const refused = await pub(V5.id, topic(V4), reading(55));
    expect(refused.stderr).toContain('Not authorized');

    // The feedback is published by a gateway, through the broker, under its gateway account.
    const feedback = await collect(v4, topic(V4, 'rejected'));
    await v4.publishAsync(topic(V4), JSON.stringify({ ts: new Date().toISOString(), spo2: 140, pulse: 70 }), {
      qos: 1,
    });
    const [answer] = await feedback.next(1, 20_000);
    expect(JSON.parse(answer?.payload.toString() ?? '{}')).toMatchObject({ reason: 'schema' });
    expect(await spo2Of(V4)).toEqual([96]);
  });
});

describe('two gateways: jobs', () => {
  it('runs the once-per-lab jobs once: the daily report on the leader only, liveness events not doubled', async () => {
    const reports = (gw: GatewayProcess) =>
      existsSync(join(gw.dataDir, 'reports')) ? readdirSync(join(gw.dataDir, 'reports')) : [];
    await eventually(
      async () => reports(leader).filter((f) => f.endsWith('.json')).length,
      (n) => n === 1,
      30_000,
    );
    // The follower ran its own housekeeping (its own data folder) and never the report.
    const housekeptAt = () => {
      const text = readFileSync(join(follower.dataDir, 'jobs.json'), 'utf8');
      // Read between the write and the rename of a rewrite: polled again.
      return text ? Date.parse(JSON.parse(text).housekeeping.lastRunAt) : 0;
    };
    await eventually(
      async () => housekeptAt(),
      (t) => t > Date.parse(threeDaysAgo),
      30_000,
    );
    expect(reports(follower)).toEqual([]);

    // Low battery readings, spread over both gateways' sessions, then silence.
    const isQuiet = (e: { event: string; deviceId: string }) => e.deviceId === QUIET.id;
    await eventually(
      async () => events(leader).filter(isQuiet).length,
      (n) => n === 1,
      30_000,
    );
    const before = 1;
    const quiet = await connectDevice(mosquitto.url, QUIET.id);
    for (let i = 0; i < 8; i++)
      await quiet.publishAsync(
        topic(QUIET),
        JSON.stringify({ ts: new Date().toISOString(), temperature: 21, humidity: 40, battery: 12 - i }),
        { qos: 1 },
      );
    await quiet.endAsync();
    // Silent since the gateways started, it was offline before: back online, low, silent again.
    const both = () =>
      [...events(leader), ...events(follower)].filter((e) => e.deviceId === QUIET.id).slice(before);
    await eventually(
      async () => both().map((e) => e.event),
      (e) => e.includes('device-offline'),
      30_000,
    );
    expect(events(follower)).toEqual([]);
    expect(
      both()
        .map((e) => e.event)
        .sort(),
    ).toEqual(['battery-low', 'device-offline', 'device-online']);
  });
});

describe('two gateways under a fleet', () => {
  it('kill -9 of one gateway under a fleet, and its restart, lose nothing acknowledged', async () => {
    const fleet = startFleet({
      ids: FLEET.map((d) => d.id),
      site: 'cl',
      url: () => mosquitto.url,
      intervalMs: 10,
    });
    onTestFinished(() => fleet.stop());
    await fleet.untilAcked(300, 60_000);
    expect(await follower.kill('SIGKILL')).toBeNull();
    const ackedAtKill = fleet.acked;
    // The leader alone carries the fleet meanwhile.
    await fleet.untilAcked(ackedAtKill + 300, 60_000);
    await follower.start();
    await fleet.untilAcked(fleet.acked + 300, 60_000);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, DB, 90_000);
    console.log(`[cluster] kill -9 of one of two gateways: ${JSON.stringify({ ...result, ackedAtKill })}`);
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(result.stored).toBe(result.acked);
  });
});

/** A member of a shared group with the gateway account; `ack: false` never acknowledges. */
async function member(clientId: string, group: string, ack: boolean, filter = topic(PROBE)) {
  const received: string[] = [];
  const c: MqttClient = mqtt.connect(mosquitto.gatewayUrl, {
    ...{ protocolVersion: 5, clientId, clean: false, reconnectPeriod: 0 },
    ...{ username: GATEWAY_ACCOUNT, password: PASSWORD },
    properties: { sessionExpiryInterval: 300, receiveMaximum: 5 },
  });
  c.handleMessage = (packet, done) => {
    received.push(packet.payload.toString());
    if (ack) done();
  };
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  await c.subscribeAsync(`$share/${group}/${filter}`, { qos: 1 });
  return { c, received };
}

describe('Mosquitto 2.0: QoS 1 messages in flight to a shared-subscription member that dies', () => {
  it('are held in the dead member session (not given to the other member) and delivered to whoever takes its client id', async () => {
    const dead = await member(`${GATEWAY_ACCOUNT}:probe-1`, 'probe', false);
    const alive = await member(`${GATEWAY_ACCOUNT}:probe-2`, 'probe', true);
    onTestFinished(() => alive.c.endAsync(true));
    const device = await connectDevice(mosquitto.url, PROBE.id);
    onTestFinished(() => device.endAsync());
    for (let i = 0; i < 20; i++) await device.publishAsync(topic(PROBE), reading(80 + i), { qos: 1 });
    // The unacknowledging member has its first message in hand (MQTT.js reads no further until it
    // is acknowledged; the broker has sent up to its receive maximum, 5); the other took its share.
    await eventually(
      async () => dead.received.length,
      (n) => n === 1,
      10_000,
    );
    await eventually(
      async () => alive.received.length,
      (n) => n >= 10,
      10_000,
    );
    // kill -9: the socket closes without DISCONNECT, the session stays (expiry 300 s).
    dead.c.stream.destroy();
    const aliveCount = await settled(() => alive.received.length, 2000, 20_000);
    // Taking the dead member's client id over (its restart, or another gateway started under it).
    const heir = await member(`${GATEWAY_ACCOUNT}:probe-1`, 'probe', true);
    onTestFinished(() => heir.c.endAsync(true));
    const heirCount = await settled(() => heir.received.length, 2000, 20_000);
    console.log(
      `[cluster] killed with its share unacknowledged: other member got ${aliveCount}, the heir ${heirCount}`,
    );
    expect(aliveCount).toBe(10);
    expect(heirCount).toBe(10);
    expect(new Set([...alive.received, ...heir.received]).size).toBe(20);
  });
});

describe("the leader's liveness behind a shared subscription", () => {
  it('hears every device message, also those the broker gave to another member of the group', async () => {
    const config = loadConfig({
      flags: {
        source: 'external',
        external: {
          url: mosquitto.gatewayUrl,
          username: GATEWAY_ACCOUNT,
          clientId: `${GATEWAY_ACCOUNT}:sight`,
          group: 'sight',
          connections: 1,
        },
      },
    });
    const snapshot = toSnapshot(await readRegistryFile(join(dir, 'lab.yaml')));
    const sighted: string[] = [];
    let shared = 0;
    const source = createExternalSource({
      ...{ config, registry: { current: () => snapshot }, password: PASSWORD },
      log: createLogger({ level: 'silent' }),
      onSighting: (id) => sighted.push(id),
    });
    // Takes its share and keeps nothing: only what the sightings connection says is looked at.
    await source.start({
      handle: async () => {
        shared++;
        return { accepted: 0, rejections: [], ingested: false };
      },
      rejectOversize: () => {},
    });
    onTestFinished(() => source.stop());
    // Another member of the group takes the other share.
    const other = await member(`${GATEWAY_ACCOUNT}:sight-2`, 'sight', true, 'lab/+/+/+/+');
    onTestFinished(() => other.c.endAsync(true));
    const device = await connectDevice(mosquitto.url, PROBE.id);
    onTestFinished(() => device.endAsync());
    for (let i = 0; i < 10; i++) await device.publishAsync(topic(PROBE), reading(60 + i), { qos: 1 });
    await eventually(
      async () => sighted.length,
      (n) => n >= 10,
      10_000,
    );
    expect(sighted.filter((id) => id === PROBE.id)).toHaveLength(10);
    expect(shared).toBeLessThan(10);
  });
});
