// The gateway behind an external broker (`--source external`): a real Mosquitto 2.0 with a
// password file, a real influxd, the gateway (buildApp) subscribed through $share on a persistent
// MQTT 5 session, and devices speaking MQTT 5 (mosquitto_pub -V mqttv5, MQTT.js) and 3.1.1.
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';

vi.setConfig({ testTimeout: 90_000 });

import type { ConfigInput } from '../../src/config/load.js';
import { loadConfig } from '../../src/config/load.js';
import { createExternalSource, type ExternalSource } from '../../src/ingest/sources/external.js';
import { createLogger } from '../../src/log.js';
import { createTestCerts } from '../helpers/certs.js';
import { createDiskFaults } from '../helpers/disk-faults.js';
import { type LabGatewayOptions, useLab } from '../helpers/fixture.js';
import { PASSWORD, type TestDevice, type TestGateway } from '../helpers/gateway.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { issueStaff } from '../helpers/http-auth.js';
import { metricIn, scrapeMetrics } from '../helpers/metrics.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { collect, connectDevice, eventually, mosquittoPub, settled } from '../helpers/mqtt.js';
import { closedPortUrl, freePort } from '../helpers/ports.js';
import { compareWithInflux, startFleet } from '../helpers/publishers.js';

const GATEWAY_USER = 'gateway';
const GATEWAY_PASSWORD = 'gateway broker secret';
const ox = (id: string, site = 'ext'): TestDevice => ({ id, type: 'pulse-oximeter', site });
const V5 = ox('ext-ox-v5');
const V4 = ox('ext-ox-v4');
const FLEET = Array.from({ length: 4 }, (_, i) => ox(`full-ox-${i}`, 'full'));
const KILL = Array.from({ length: 4 }, (_, i) => ox(`kill-ox-${i}`, 'kill'));
const QUIET: TestDevice = { id: 'ext-quiet', type: 'room-climate', site: 'ext', interval: '1s' };
const DEVICES = [V5, V4, QUIET, ...FLEET, ...KILL];
const telemetry = (d: TestDevice) => `lab/${d.site}/${d.type}/${d.id}/telemetry`;
const reading = (spo2: number, ts = new Date(Date.now() - 30_000).toISOString()) =>
  JSON.stringify({ ts, spo2, pulse: 70 });

const lab = useLab();
let mosquitto: Mosquitto;
beforeAll(async () => {
  const users: Record<string, string> = { [GATEWAY_USER]: GATEWAY_PASSWORD, 'ghost-1': PASSWORD };
  for (const d of DEVICES) users[d.id] = PASSWORD;
  mosquitto = await startMosquitto({ users });
});
afterAll(() => mosquitto.stop());

let sessions = 0;
/**
 * A gateway in external mode. Each gets its own client id and group unless told: a stopped
 * gateway's persistent session stays a member of its group at the broker.
 */
async function startExternalGateway(
  opts: LabGatewayOptions & { clientId?: string; group?: string; external?: ConfigInput } = {},
): Promise<TestGateway & { source: ExternalSource }> {
  sessions++;
  const { clientId = `gw-${sessions}`, group = `g${sessions}`, external, config, ...rest } = opts;
  const gw = await lab.startGateway({
    devices: DEVICES,
    brokerPassword: GATEWAY_PASSWORD,
    ...rest,
    config: {
      source: 'external',
      external: { url: mosquitto.url, username: GATEWAY_USER, clientId, group, ...external },
      ...config,
    },
  });
  return Object.assign(gw, { source: gw.app.external as ExternalSource });
}

const spo2Of = (gw: TestGateway, d: TestDevice) =>
  lab.influx.query<{ spo2: number }>(gw.db, `SELECT spo2 FROM pulse_oximeter WHERE device_id = '${d.id}'`);

describe('a gateway on an external Mosquitto 2.0 (--source external)', () => {
  it('stores readings of an MQTT 5 device (mosquitto_pub -V mqttv5 and MQTT.js v5) and an MQTT 3.1.1 device; connections show as unknown', async () => {
    const gw = await startExternalGateway({ clientId: 'gw-first' });
    // Four sessions (external.connections), each MQTT 5 (p5) with clean start off (c0), as the broker saw them.
    const sessionsSeen = () =>
      ['gw-first', 'gw-first-2', 'gw-first-3', 'gw-first-4'].filter((id) =>
        mosquitto.output().includes(`as ${id} (p5, c0, k30, u'${GATEWAY_USER}')`),
      ).length;
    await eventually(
      async () => sessionsSeen(),
      (n) => n === 4,
    );
    const pub = await mosquittoPub([
      ...['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(mosquitto.port)],
      ...['-i', V5.id, '-u', V5.id, '-P', PASSWORD, '-q', '1'],
      ...['-t', telemetry(V5), '-m', reading(91, new Date(Date.now() - 40_000).toISOString())],
    ]);
    expect(pub).toMatchObject({ code: 0 });
    const v5 = await connectDevice(mosquitto.url, V5.id, { protocolVersion: 5 });
    onTestFinished(() => v5.endAsync());
    await v5.publishAsync(telemetry(V5), reading(92), { qos: 1 });
    const v4 = await connectDevice(mosquitto.url, V4.id, { protocolVersion: 4 });
    onTestFinished(() => v4.endAsync());
    await v4.publishAsync(telemetry(V4), reading(93), { qos: 1 });

    const v5Rows = await eventually(
      () => spo2Of(gw, V5),
      (r) => r.length === 2,
    );
    expect(v5Rows.map((r) => r.spo2)).toEqual([91, 92]);
    expect(
      (
        await eventually(
          () => spo2Of(gw, V4),
          (r) => r.length === 1,
        )
      )[0],
    ).toMatchObject({ spo2: 93 });

    // The broker holds the connections: the gateway says "unknown", never a false 0.
    const metrics = await scrapeMetrics(gw.app.opsPort);
    expect(metricIn(metrics, 'livinglab_connected_clients')).toBeUndefined();
    expect(metrics).not.toMatch(/^livinglab_connected_devices\{/m);
    expect(metricIn(metrics, 'livinglab_readings_accepted_total')).toBe(3);
    const token = await issueStaff(gw, 'ext-staff');
    const res = await fetch(`http://127.0.0.1:${gw.app.httpPort}/api/v1/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const status = (await res.json()) as { connectedDevices: unknown; devices: Record<string, unknown>[] };
    expect(status.connectedDevices).toBeNull();
    const v5Status = status.devices.find((d) => d.id === V5.id);
    expect(v5Status).toMatchObject({ connected: null, silent: false });
    expect(v5Status?.lastSeen).toEqual(expect.any(String));
  });

  it("answers an invalid reading on the device's rejected topic through the broker and stores nothing of it", async () => {
    const gw = await startExternalGateway();
    const device = await connectDevice(mosquitto.url, V5.id, { protocolVersion: 5 });
    onTestFinished(() => device.endAsync());
    const feedback = await collect(device, `lab/ext/pulse-oximeter/${V5.id}/rejected`);
    await device.publishAsync(telemetry(V5), reading(104), { qos: 1 });
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '{}')).toMatchObject({
      topic: telemetry(V5),
      reason: 'schema',
      errors: [{ path: '/spo2', message: 'must be <= 100', value: 104 }],
    });
    const [line] = await gw.rejectsLog();
    expect(line).toMatchObject({ clientId: V5.id, topic: telemetry(V5), rejections: [{ reason: 'schema' }] });
    expect(await spo2Of(gw, V5)).toEqual([]);
    // Its own feedback came back through lab/+/+/+/+ and was skipped, not judged as a device message.
    expect(gw.app.pipeline.stats.messages).toBe(1);
  });

  it('rejects readings on a topic naming an unregistered device, or a device at another site, with reason "topic", and stores neither', async () => {
    const gw = await startExternalGateway();
    const ghost = await connectDevice(mosquitto.url, 'ghost-1', { protocolVersion: 5 });
    onTestFinished(() => ghost.endAsync());
    const GHOST_TOPIC = 'lab/ext/pulse-oximeter/ghost-1/telemetry';
    await ghost.publishAsync(GHOST_TOPIC, reading(95), { qos: 1 });
    const real = await connectDevice(mosquitto.url, V4.id);
    onTestFinished(() => real.endAsync());
    const WRONG_SITE = `lab/elsewhere/pulse-oximeter/${V4.id}/telemetry`;
    await real.publishAsync(WRONG_SITE, reading(94), { qos: 1 });
    await real.publishAsync(telemetry(V4), reading(96), { qos: 1 });
    expect(
      await eventually(
        () => spo2Of(gw, V4),
        (r) => r.length === 1,
      ),
    ).toEqual([expect.objectContaining({ spo2: 96 })]);
    const lines = await eventually(
      () => gw.rejectsLog(),
      (l) => l.length === 2,
    );
    // Sessions take messages side by side: the two rejections may be logged in either order.
    lines.sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
    expect(lines).toMatchObject([
      {
        clientId: V4.id,
        topic: WRONG_SITE,
        rejections: [
          {
            reason: 'topic',
            errors: [{ message: `topic must be lab/ext/pulse-oximeter/${V4.id}/{telemetry|event|status}` }],
          },
        ],
      },
      {
        clientId: 'ghost-1',
        topic: GHOST_TOPIC,
        rejections: [{ reason: 'topic', errors: [{ message: 'no device ghost-1 in the registry' }] }],
      },
    ]);
    const ghostRows = await lab.influx.query(
      gw.db,
      `SELECT * FROM pulse_oximeter WHERE device_id = 'ghost-1'`,
    );
    expect(ghostRows).toEqual([]);
    expect(
      metricIn(await scrapeMetrics(gw.app.opsPort), 'livinglab_readings_rejected_total{reason="topic"}'),
    ).toBe(2);
  });

  it('receives, after a restart, what the broker held for its session while it was away', async () => {
    const first = await startExternalGateway({ clientId: 'gw-away', group: 'away' });
    await first.stop();
    const device = await connectDevice(mosquitto.url, V4.id);
    onTestFinished(() => device.endAsync());
    const base = Date.now() - 60_000;
    for (let i = 0; i < 20; i++)
      await device.publishAsync(telemetry(V4), reading(80 + i, new Date(base + i * 1000).toISOString()), {
        qos: 1,
      });
    const again = await startExternalGateway({ clientId: 'gw-away', group: 'away' });
    const rows = await eventually(
      () => spo2Of(again, V4),
      (r) => r.length === 20,
    );
    expect(rows.map((r) => r.spo2)).toEqual(Array.from({ length: 20 }, (_, i) => 80 + i));
  });

  it('writes a message the broker sends again as the same point: committed, PUBACK withheld, redelivered, stored once', async () => {
    const faults = createDiskFaults();
    const gw = await startExternalGateway({ openSpoolFile: faults.openFile, external: { ackWait: '100ms' } });
    const device = await connectDevice(mosquitto.url, V5.id, { protocolVersion: 5 });
    onTestFinished(() => device.endAsync());
    // A slow disk: the append outlasts the wait, so the gateway commits the reading but withholds the
    // PUBACK, and then asks the broker (a reconnect) to send it again.
    faults.delayNextWrite(1000);
    await device.publishAsync(telemetry(V5), reading(97), { qos: 1 });
    await eventually(
      async () => gw.source.stats,
      (s) => s.withheld === 1 && s.redeliveries === 1 && s.acknowledged === 1,
      20_000,
    );
    // Both copies went through the spool and both were written to InfluxDB...
    expect(gw.app.pipeline.stats.readingsAccepted).toBe(2);
    await eventually(
      async () => gw.app.drain.stats.pointsWritten,
      (n) => n === 2,
    );
    // ...as one point: same series, same timestamp.
    expect(await spo2Of(gw, V5)).toEqual([expect.objectContaining({ spo2: 97 })]);
  });

  it("publishes a silent device's retained offline status through the broker, online again when it reports, and skips its own status messages", async () => {
    const gw = await startExternalGateway({ config: { jobs: { liveness: { schedule: '* * * * * *' } } } });
    const STATUS = 'lab/ext/room-climate/ext-quiet/status';
    const observer = await connectDevice(mosquitto.url, 'ghost-1', { protocolVersion: 5 });
    onTestFinished(() => observer.endAsync());
    const status = await collect(observer, STATUS, 1);
    const device = await connectDevice(mosquitto.url, QUIET.id, { protocolVersion: 5 });
    onTestFinished(() => device.endAsync());
    const climate = () => JSON.stringify({ ts: new Date().toISOString(), temperature: 21.5, humidity: 40 });
    await device.publishAsync(telemetry(QUIET), climate(), { qos: 1 });
    // Silent for 3 intervals (1 s each): offline, found by the next check.
    const [offline] = await status.next(1, 15_000);
    expect(offline?.payload.toString()).toBe('offline');
    expect(gw.app.liveness.silent.has(QUIET.id)).toBe(true);
    // Retained at the broker: a newcomer gets it on subscribing.
    const late = await connectDevice(mosquitto.url, V4.id);
    onTestFinished(() => late.endAsync());
    const retained = await collect(late, STATUS, 1);
    expect((await retained.next(1))[0]).toMatchObject({ retain: true, payload: Buffer.from('offline') });
    await device.publishAsync(telemetry(QUIET), climate(), { qos: 1 });
    const [, online] = await status.next(2);
    expect(online?.payload.toString()).toBe('online');
    // The gateway's own status messages came back through lab/+/+/+/+ and were not handed in.
    expect(gw.app.pipeline.stats.messages).toBe(2);
  });

  it('connects over mqtts:// with external.ca (readings land), and without the CA does not start (LL_BROKER_UNREACHABLE naming external.ca)', async () => {
    const certs = await createTestCerts();
    onTestFinished(() => certs.remove());
    const tlsPort = await freePort();
    const broker = await startMosquitto({
      users: { [GATEWAY_USER]: GATEWAY_PASSWORD, [V4.id]: PASSWORD },
      conf: [
        `listener ${tlsPort} 127.0.0.1`,
        `cafile ${certs.caFile}`,
        `certfile ${certs.server.cert}`,
        `keyfile ${certs.server.key}`,
      ],
    });
    onTestFinished(() => broker.stop());
    const url = `mqtts://127.0.0.1:${tlsPort}`;
    const gw = await startExternalGateway({ external: { url, ca: certs.caFile } });
    const device = await connectDevice(broker.url, V4.id);
    onTestFinished(() => device.endAsync());
    await device.publishAsync(telemetry(V4), reading(88), { qos: 1 });
    expect(
      await eventually(
        () => spo2Of(gw, V4),
        (r) => r.length === 1,
      ),
    ).toEqual([expect.objectContaining({ spo2: 88 })]);

    const config = loadConfig({ flags: { source: 'external', external: { url, username: GATEWAY_USER } } });
    const registry = { current: () => gw.app.registry.current() };
    const source = createExternalSource({
      config,
      registry,
      password: GATEWAY_PASSWORD,
      log: createLogger({ level: 'silent' }),
    });
    const ingestion = {
      handle: async () => ({ accepted: 0, rejections: [], ingested: false }),
      rejectOversize() {},
    };
    await expect(source.start(ingestion)).rejects.toMatchObject({
      code: 'LL_BROKER_UNREACHABLE',
      message: expect.stringContaining("external.ca names the CA that signed the broker's certificate"),
    });
  });

  it('does not start when nothing answers at the broker URL: LL_BROKER_UNREACHABLE naming it', async () => {
    const url = (await closedPortUrl()).replace(/^http/, 'mqtt');
    const config = loadConfig({ flags: { source: 'external', external: { url } } });
    const registry = {
      current: () => {
        throw new Error('no message can arrive without a broker');
      },
    };
    const source = createExternalSource({ config, registry, log: createLogger({ level: 'silent' }) });
    const ingestion = {
      handle: async () => ({ accepted: 0, rejections: [], ingested: false }),
      rejectOversize() {},
    };
    await expect(source.start(ingestion)).rejects.toMatchObject({
      code: 'LL_BROKER_UNREACHABLE',
      message: expect.stringContaining(`the external broker at ${url} could not be reached`),
    });
    expect(source.connected).toBe(false);
  });

  it('livinglab serve --source external: refuses a wrong broker password (LL_BROKER_REFUSED) without printing it', async () => {
    const wrong = 'not the gateway password';
    const gw = await createGatewayProcess({
      ...{ influxUrl: lab.influx.url, db: 'ext_refused', devices: DEVICES },
      env: { LIVINGLAB_BROKER_PASSWORD: wrong, LIVINGLAB_EXTERNAL_USERNAME: GATEWAY_USER },
      args: ['--source', 'external', '--broker-url', mosquitto.url, '--broker-client-id', 'gw-refused'],
    });
    onTestFinished(() => gw.stop());
    await expect(gw.start()).rejects.toThrow(/exited with 2/);
    expect(gw.output()).toMatch(
      /external broker at mqtt:\/\/127\.0\.0\.1:\d+ refused the gateway: .*LIVINGLAB_BROKER_PASSWORD/,
    );
    expect(gw.output()).not.toContain(wrong);
  });

  it('livinglab serve --source external: SIGKILL under load and a restart lose nothing the broker acknowledged; the password is never logged', async () => {
    const db = 'ext_kill';
    const gw = await createGatewayProcess({
      ...{ influxUrl: lab.influx.url, db, devices: DEVICES },
      env: { LIVINGLAB_BROKER_PASSWORD: GATEWAY_PASSWORD, LIVINGLAB_EXTERNAL_USERNAME: GATEWAY_USER },
      args: [
        ...['--source', 'external', '--broker-url', mosquitto.url],
        ...['--broker-client-id', 'gw-kill', '--broker-group', 'kill', '--log-level', 'debug'],
      ],
    });
    onTestFinished(() => gw.stop());
    await gw.start();
    const fleet = startFleet({
      ids: KILL.map((d) => d.id),
      site: 'kill',
      url: () => mosquitto.url,
      intervalMs: 5,
    });
    onTestFinished(() => fleet.stop());
    const stored = async () =>
      (await lab.influx.query<{ count: number }>(db, 'SELECT count(spo2) FROM pulse_oximeter'))[0]?.count ??
      0;
    // Killed while it works: readings reach InfluxDB, more are on their way through the spool.
    await eventually(stored, (n) => n >= 300, 30_000);
    expect(await gw.kill('SIGKILL')).toBeNull();
    const ackedAtKill = fleet.acked;
    await gw.start();
    await fleet.untilAcked(ackedAtKill + 500);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, db, 90_000);
    console.log(`[external] SIGKILL: ${JSON.stringify({ ...result, ackedAtKill })}`);
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(result.stored).toBe(result.acked);
    expect(gw.output()).toContain('connected to the external broker');
    expect(gw.output()).not.toContain(GATEWAY_PASSWORD);
    expect(await gw.kill('SIGTERM')).toBe(0);
  });

  it('spool full: stops acknowledging and handing in (the broker keeps the messages), resumes when InfluxDB is back, loses nothing', async () => {
    const gw = await startExternalGateway({
      config: { spool: { maxSize: '16KiB' } },
      external: { receiveMaximum: 10, ackWait: '500ms' },
    });
    await lab.influx.kill();
    const fleet = startFleet({
      ids: FLEET.map((d) => d.id),
      site: 'full',
      url: () => mosquitto.url,
      intervalMs: 2,
    });
    onTestFinished(() => fleet.stop());
    await eventually(
      async () => gw.app.queue.stats.full,
      (full) => full,
      30_000,
    );
    const ackedWhenFull = await settled(() => gw.source.stats.acknowledged, 1000);
    // Each session hands in one more message, which then waits for room: settled once all do.
    const handedWhenFull = await settled(() => gw.app.pipeline.stats.messages, 1000);
    // Not a fixed sleep: the gateway is seen at work (two more failed writes to the stopped influxd)
    // while the devices go on publishing to the broker.
    const retries = gw.app.drain.stats.writeRetries;
    const sentWhenFull = fleet.sent;
    await eventually(
      async () => ({ retries: gw.app.drain.stats.writeRetries, sent: fleet.sent }),
      (n) => n.retries >= retries + 2 && n.sent >= sentWhenFull + 200,
      30_000,
    );
    expect(gw.source.stats.acknowledged).toBe(ackedWhenFull);
    // Withheld, not handed in: what waits is at the broker, not in the gateway's memory.
    expect(gw.app.pipeline.stats.messages).toBe(handedWhenFull);
    expect(gw.source.stats.withheld).toBeGreaterThan(0);
    const metrics = await scrapeMetrics(gw.app.opsPort);
    expect(metricIn(metrics, 'livinglab_broker_acks_withheld_total')).toBe(gw.source.stats.withheld);
    expect(metricIn(metrics, 'livinglab_broker_acks_total')).toBe(ackedWhenFull);
    expect(gw.app.queue.stats.bytes).toBeLessThanOrEqual(16 * 1024);
    await lab.influx.restart();
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, gw.db, 90_000);
    console.log(`[external] spool full: ${JSON.stringify({ ...result, ackedWhenFull, ...gw.source.stats })}`);
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(gw.source.stats.acknowledged).toBeGreaterThan(ackedWhenFull);
  });
});
