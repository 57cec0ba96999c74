// MQTT over TLS against a real gateway and influxd: readings over TLS from mosquitto_pub and
// MQTT.js, a certificate renewal without a restart, plain MQTT kept off the network once TLS is
// configured, and bad input on the TLS port closing that connection only.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { connect as connectTls } from 'node:tls';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createTestCerts, type TestCerts } from '../helpers/certs.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD, type TestGateway } from '../helpers/gateway.js';
import { readMetric, scrapeMetrics } from '../helpers/metrics.js';
import { connectDevice, eventually, mosquittoPub } from '../helpers/mqtt.js';
import { connectPacket, fixedHeader } from '../helpers/raw-mqtt.js';

const BP1 = { id: 'bp-0101', type: 'blood-pressure', site: 'aarhus' };
const BP2 = { id: 'bp-0102', type: 'blood-pressure', site: 'aarhus' };
const BP3 = { id: 'bp-0103', type: 'blood-pressure', site: 'aarhus' };
const topicOf = (d: { id: string }) => `lab/aarhus/blood-pressure/${d.id}/telemetry`;

let certs: TestCerts;
beforeAll(async () => {
  certs = await createTestCerts();
});
afterAll(() => certs?.remove());

const tlsConfig = (c: TestCerts, extra: Record<string, unknown> = {}) => ({
  tls: { cert: c.server.cert, key: c.server.key, ca: c.caFile },
  listeners: { mqtts: { port: 0, host: '127.0.0.1' } },
  // A half-open handshake gets as long as a CONNECT does.
  mqtt: { port: 0, host: '127.0.0.1', connectTimeout: '1s' },
  ...extra,
});

const lab = useLab(() => ({ devices: [BP1, BP2, BP3], config: tlsConfig(certs) }));

const tlsPortOf = (gw: TestGateway) => {
  const port = gw.app.broker.tlsPort;
  if (port === undefined) throw new Error('the gateway has no TLS listener');
  return port;
};
const mqttsUrl = (gw: TestGateway) => `mqtts://127.0.0.1:${tlsPortOf(gw)}`;
const tlsOpts = () => ({ ca: certs.caPem, servername: 'localhost' });

const reading = (systolic: number) =>
  JSON.stringify({ ts: new Date(Date.now() - 1000).toISOString(), systolic, diastolic: 80 });

const rowsWith = (gw: TestGateway, systolic: number) =>
  lab.influx.query(gw.db, `SELECT * FROM blood_pressure WHERE systolic = ${systolic}`);

async function landed(gw: TestGateway, systolic: number, deviceId: string) {
  const rows = await eventually(
    () => rowsWith(gw, systolic),
    (r) => r.length === 1,
  );
  expect(rows[0]).toMatchObject({ device_id: deviceId, diastolic: 80 });
}

describe('MQTT over TLS', () => {
  it('takes a reading from mosquitto_pub with --cafile and a password, and it lands in InfluxDB', async () => {
    const pub = await mosquittoPub([
      ...['-h', '127.0.0.1', '-p', String(tlsPortOf(lab.gw)), '--cafile', certs.caFile],
      ...['-u', BP1.id, '-P', PASSWORD, '-i', BP1.id, '-q', '1'],
      ...['-t', topicOf(BP1), '-m', reading(131)],
    ]);
    expect(pub).toEqual({ code: 0, stderr: '' });
    await landed(lab.gw, 131, BP1.id);
  });

  it('takes a reading from MQTT.js over mqtts:// (QoS 1), and it lands in InfluxDB', async () => {
    const client = await connectDevice(mqttsUrl(lab.gw), BP2.id, tlsOpts());
    onTestFinished(() => {
      client.end(true);
    });
    await client.publishAsync(topicOf(BP2), reading(132), { qos: 1 });
    await landed(lab.gw, 132, BP2.id);
  });

  it('refuses TLS 1.1 and older (tls.minVersion TLSv1.2)', async () => {
    const socket = connectTls({
      port: tlsPortOf(lab.gw),
      host: '127.0.0.1',
      ...tlsOpts(),
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
    });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('handshake done'));
      socket.once('error', (err) => resolve(err.message));
    });
    socket.destroy();
    // The gateway's alert 70 (protocol_version), as OpenSSL reports receiving it.
    expect(outcome).toMatch(/alert protocol version/);
  });
});

/** A real TLS ClientHello, as a client sends it first: caught on a local socket that never answers. */
async function captureClientHello(): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const received = once(server, 'connection').then(async ([s]: Socket[]) => {
    const [chunk] = (await once(s as Socket, 'data')) as Buffer[];
    s?.destroy();
    return chunk as Buffer;
  });
  const client = connectTls({ port, host: '127.0.0.1', servername: 'localhost' });
  client.on('error', () => undefined);
  const hello = await received;
  client.destroy();
  server.close();
  return hello;
}

/** Sends bytes to the TLS port on a raw socket; resolves once the gateway has closed it. */
async function closedAfter(port: number, bytes: Buffer): Promise<'closed'> {
  const socket = connectTcp(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  await once(socket, 'connect');
  socket.write(bytes);
  await once(socket, 'close');
  return 'closed';
}

describe('bad input on the TLS port closes that connection only', () => {
  let keeper: MqttClient;
  beforeAll(async () => {
    keeper = await connectDevice(mqttsUrl(lab.gw), BP3.id, tlsOpts());
  });
  afterAll(() => {
    keeper?.end(true);
  });

  const handshakeFailures = () => lab.gw.app.broker.guardStats.connectionsRefused['tls-handshake'] ?? 0;

  it('a plain MQTT CONNECT sent to the TLS port', async () => {
    const before = handshakeFailures();
    expect(await closedAfter(tlsPortOf(lab.gw), connectPacket(BP1.id, PASSWORD))).toBe('closed');
    await eventually(
      async () => handshakeFailures(),
      (n) => n > before,
    );
  });

  it('a TLS client hello with garbage after it', async () => {
    const before = handshakeFailures();
    const garbage = Buffer.alloc(4096, 0x5a);
    expect(await closedAfter(tlsPortOf(lab.gw), Buffer.concat([await captureClientHello(), garbage]))).toBe(
      'closed',
    );
    await eventually(
      async () => handshakeFailures(),
      (n) => n > before,
    );
  });

  it('a handshake left half-open is closed after mqtt.connectTimeout', async () => {
    const before = handshakeFailures();
    // Node's default handshake timeout is 120 s: without ours this waits past the test's timeout.
    expect(await closedAfter(tlsPortOf(lab.gw), await captureClientHello())).toBe('closed');
    await eventually(
      async () => handshakeFailures(),
      (n) => n > before,
    );
  });

  it('a CONNECT over TLS larger than mqtt.maxConnectPacketSize (the frame guard applies after decryption)', async () => {
    const before = lab.gw.app.broker.guardStats.connectionsRefused['connect-too-large'] ?? 0;
    const socket = connectTls({ port: tlsPortOf(lab.gw), host: '127.0.0.1', ...tlsOpts() });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    socket.write(fixedHeader(1, 100_000));
    await once(socket, 'close');
    expect(lab.gw.app.broker.guardStats.connectionsRefused['connect-too-large']).toBe(before + 1);
  });

  it('the device connected over TLS all along still publishes, and its reading lands', async () => {
    expect(keeper.connected).toBe(true);
    await keeper.publishAsync(topicOf(BP3), reading(133), { qos: 1 });
    await landed(lab.gw, 133, BP3.id);
  });
});

describe('certificate renewal', () => {
  it('is picked up without a restart while a device stays connected', async () => {
    const own = await createTestCerts();
    onTestFinished(() => own.remove());
    const gw = await lab.startGateway({ devices: [BP1, BP2], config: tlsConfig(own) });
    const ca = own.caPem;
    const staying = await connectDevice(mqttsUrl(gw), BP1.id, { ca, servername: 'localhost' });
    onTestFinished(() => {
      staying.end(true);
    });
    await staying.publishAsync(topicOf(BP1), reading(141), { qos: 1 });
    await landed(gw, 141, BP1.id);

    const served = async () => {
      const s = connectTls({ port: tlsPortOf(gw), host: '127.0.0.1', ca, servername: 'localhost' });
      await once(s, 'secureConnect');
      const fingerprint = s.getPeerCertificate().fingerprint256;
      s.destroy();
      return fingerprint;
    };
    expect(await served()).toBe(own.server.fingerprint256);
    const renewed = await own.renewServer();
    expect(renewed.fingerprint256).not.toBe(own.server.fingerprint256);
    await eventually(served, (f) => f === renewed.fingerprint256);
    expect(new X509Certificate(readFileSync(renewed.cert)).fingerprint256).toBe(renewed.fingerprint256);

    // The device connected before the renewal never noticed it.
    expect(staying.connected).toBe(true);
    await staying.publishAsync(topicOf(BP1), reading(142), { qos: 1 });
    await landed(gw, 142, BP1.id);
    expect(gw.logLines().some((l) => l.msg === 'TLS certificate reloaded')).toBe(true);
  });
});

describe('certificate expiry metric', () => {
  const SERIES = 'livinglab_tls_certificate_expiry_timestamp_seconds';
  const expiryOf = (file: string) =>
    Math.floor(Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000);

  it("exports the served certificate's end of validity, and the renewed one's after a renewal", async () => {
    const own = await createTestCerts();
    onTestFinished(() => own.remove());
    const gw = await lab.startGateway({ devices: [BP1], config: tlsConfig(own) });
    const series = `${SERIES}{file="${own.server.cert}"}`;
    expect(await readMetric(gw.app.opsPort, series)).toBe(expiryOf(own.server.cert));
    // Certificates are valid from an hour before issue for 730 days, to the second: a renewal at
    // least a second after the first issue ends later.
    const before = expiryOf(own.server.cert);
    const issuedMs = before * 1000 - 730 * 86_400_000 + 3_600_000;
    await eventually(
      async () => Date.now(),
      (now) => now >= issuedMs + 1000,
    );
    await own.renewServer();
    const after = expiryOf(own.server.cert);
    expect(after).toBeGreaterThan(before);
    await eventually(
      () => readMetric(gw.app.opsPort, series),
      (v) => v === after,
    );
  });

  it('exports no expiry without TLS (a 0 would fire the expiry alert)', async () => {
    const gw = await lab.startGateway({ devices: [BP1], config: {} });
    const text = await scrapeMetrics(gw.app.opsPort);
    expect(text).toContain(`# TYPE ${SERIES} gauge`);
    expect(text.split('\n').filter((l) => l.startsWith(`${SERIES}{`))).toEqual([]);
  });
});

describe('mqtt.maxConnections', () => {
  it('caps TCP and TLS connections together', async () => {
    const gw = await lab.startGateway({
      devices: [BP1, BP2, BP3],
      config: { ...tlsConfig(certs), mqtt: { port: 0, host: '127.0.0.1', maxConnections: 2 } },
    });
    const plain = await connectDevice(gw.mqttUrl, BP1.id);
    const secure = await connectDevice(mqttsUrl(gw), BP2.id, tlsOpts());
    onTestFinished(() => {
      plain.end(true);
      secure.end(true);
    });
    await expect(connectDevice(mqttsUrl(gw), BP3.id, tlsOpts())).rejects.toThrow();
    expect(gw.app.broker.guardStats.connectionsRefused['max-connections']).toBe(1);
    expect([plain.connected, secure.connected]).toEqual([true, true]);
  });
});

describe('plain MQTT once TLS is configured', () => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

  it.skipIf(!external)(
    'listens on loopback only while mqtt.host is unset (needs a non-loopback IPv4 address, skipped without)',
    async () => {
      const address = external as string;
      const gw = await lab.startGateway({
        devices: [BP1],
        // mqtt.host left unset; the TLS listener on every interface, to show the address is reachable.
        config: {
          ...tlsConfig(certs),
          mqtt: { port: 0 },
          listeners: { mqtts: { port: 0, host: '0.0.0.0' } },
        },
      });
      const attempt = (port: number) =>
        new Promise<string>((resolve) => {
          const s = connectTcp(port, address);
          s.once('connect', () => {
            s.destroy();
            resolve('connected');
          });
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
      expect(await attempt(tlsPortOf(gw))).toBe('connected');
      expect(await attempt(gw.app.mqttPort)).toBe('ECONNREFUSED');
      // Loopback still works for the simulators and local tools.
      const local = await connectDevice(gw.mqttUrl, BP1.id);
      await local.endAsync();
    },
  );
});
