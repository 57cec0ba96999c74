// MQTT over WebSocket (issue 16, Listeners): MQTT.js over ws:// against the real gateway and
// influxd; the same login, ACL, feedback and limits as the TCP listener, and nothing but MQTT on /mqtt.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { readMetric } from '../helpers/metrics.js';
import { collect, connackCode, connectDevice, eventually } from '../helpers/mqtt.js';
import { connectPacket } from '../helpers/raw-mqtt.js';

const OX = { id: 'ox-0301', type: 'pulse-oximeter', site: 'odense', subject: 'p-301' };
const OX2 = { id: 'ox-0302', type: 'pulse-oximeter', site: 'odense', subject: 'p-302' };
const MAX_PACKET = 16 * 1024;

const lab = useLab({
  devices: [OX, OX2],
  config: {
    listeners: { ws: { enabled: true, host: '127.0.0.1', port: 0 } },
    mqtt: { port: 0, host: '127.0.0.1', connectTimeout: '1s', maxPacketSize: MAX_PACKET },
  },
});

const wsUrl = (path = '/mqtt') => `ws://127.0.0.1:${lab.gw.app.wsPort}${path}`;
const recent = (offsetMs = 0) => new Date(Date.now() - 60_000 + offsetMs).toISOString();
const rows = (where: string) =>
  lab.influx.query<Record<string, unknown>>(lab.gw.db, `SELECT * FROM pulse_oximeter WHERE ${where}`);

/** A raw TCP connection to the WebSocket port; records what comes back and when it closes. */
async function rawConnection(port: number) {
  const socket: Socket = connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
  });
  await once(socket, 'connect');
  return { socket, text: () => Buffer.concat(chunks).toString(), closed: () => closed };
}

describe('MQTT over WebSocket on /mqtt', () => {
  it('a reading published with MQTT.js over ws:// lands in InfluxDB as the exact point', async () => {
    const client = await connectDevice(wsUrl(), OX.id);
    const ts = recent(1);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0301/telemetry',
      JSON.stringify({ ts, spo2: 95, pulse: 64, probe: 'ear' }),
      { qos: 1 },
    );
    const found = await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    expect(found[0]).toEqual({
      time: Date.parse(ts) * 1_000_000,
      device_id: 'ox-0301',
      device_type: 'pulse-oximeter',
      probe: 'ear',
      provenance: 'real',
      pulse: 64,
      schema_version: '1',
      site: 'odense',
      spo2: 95,
      subject: 'p-301',
    });
    await client.endAsync();
  });

  it('refuses a wrong password with the same CONNACK as TCP, logging the peer address', async () => {
    const wrong = { clientId: OX2.id, username: OX2.id, password: 'wrong password' };
    expect(await connackCode(wsUrl(), wrong)).toBe(4);
    expect(await connackCode(lab.gw.mqttUrl, wrong)).toBe(4);
    const refusals = lab.gw.logLines().filter((l) => l.msg === 'connection refused' && l.username === OX2.id);
    // The address comes from the TCP peer, so per-address backoff works over WebSocket too.
    expect(refusals.map((l) => l.remoteAddress)).toEqual(['127.0.0.1', '127.0.0.1']);
    // Another device's client id is refused as on TCP (client id = device id).
    expect(await connackCode(wsUrl(), { clientId: OX.id, username: OX2.id, password: PASSWORD })).toBe(2);
  });

  it('answers a reading out of range with schema feedback on the device rejected topic, and applies the ACL', async () => {
    const client = await connectDevice(wsUrl(), OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0301/rejected');
    expect(feedback.granted[0]?.qos).toBe(0);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0301/telemetry',
      JSON.stringify({ ts: recent(2), spo2: 104, pulse: 70 }),
      { qos: 1 },
    );
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '{}')).toEqual({
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      topic: 'lab/odense/pulse-oximeter/ox-0301/telemetry',
      reason: 'schema',
      errors: [{ path: '/spo2', message: 'must be <= 100', value: 104 }],
      readingIndex: 0,
      schema: 'pulse-oximeter@1',
    });
    // Another device's feedback is not this device's to read.
    const other = await client.subscribeAsync('lab/odense/pulse-oximeter/ox-0302/rejected').catch(() => []);
    expect(other.map((g) => g.qos)).not.toContain(0);
    await client.endAsync();
  });

  it('closes only the connection whose WebSocket message is over the packet limit', async () => {
    const big = await connectDevice(wsUrl(), OX2.id);
    const other = await connectDevice(wsUrl(), OX.id);
    const closed = new Promise<void>((r) => big.once('close', () => r()));
    big.publish('lab/odense/pulse-oximeter/ox-0302/telemetry', Buffer.alloc(4 * MAX_PACKET, 0x20), {
      qos: 1,
    });
    await closed;
    await eventually(
      () => lab.gw.rejectsLog(),
      (l) => l.some((e) => e.clientId === OX2.id && JSON.stringify(e.rejections).includes('too-large')),
    );
    big.end(true);
    expect(other.connected).toBe(true);
    const ts = recent(3);
    await other.publishAsync(
      'lab/odense/pulse-oximeter/ox-0301/telemetry',
      JSON.stringify({ ts, spo2: 93, pulse: 77 }),
      {
        qos: 1,
      },
    );
    await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    await other.endAsync();
  });

  it('closes a logged-in connection whose single WebSocket message is over the limit, and tells the rejects log', async () => {
    const tooLarge = async () =>
      (await lab.gw.rejectsLog()).filter(
        (e) => e.clientId === OX2.id && JSON.stringify(e.rejections).includes('too-large'),
      ).length;
    const before = await tooLarge();
    const ws = new WebSocket(wsUrl(), ['mqtt']);
    await once(ws, 'open');
    const received: Buffer[] = [];
    ws.on('message', (d: Buffer) => received.push(d));
    ws.send(connectPacket(OX2.id, PASSWORD));
    // mqtt-packet writes the CONNACK in pieces, one WebSocket message each.
    const connack = await eventually(
      async () => Buffer.concat(received),
      (b) => b.length >= 4,
    );
    expect([...connack]).toEqual([0x20, 2, 0, 0]);
    // The whole PUBLISH in one message: ws refuses it at the frame header, before the frame guard.
    const publish = mqttPacket.generate({
      cmd: 'publish',
      topic: 'lab/odense/pulse-oximeter/ox-0302/telemetry',
      payload: Buffer.alloc(2 * MAX_PACKET, 0x20),
      qos: 0,
      retain: false,
      dup: false,
    });
    const closed = once(ws, 'close');
    ws.send(publish);
    expect((await closed)[0]).toBe(1009);
    await eventually(tooLarge, (n) => n === before + 1);
  });

  it('serves no MQTT outside /mqtt: 404 to an upgrade elsewhere and to plain requests', async () => {
    const wrongPath = new WebSocket(wsUrl('/other'), ['mqtt']);
    const [err] = (await once(wrongPath, 'error')) as [Error];
    expect(err.message).toBe('Unexpected server response: 404');
    // MQTT.js gets no CONNACK there either: it closes without connecting.
    const client = mqtt.connect(wsUrl('/other'), {
      clientId: OX.id,
      username: OX.id,
      password: PASSWORD,
      reconnectPeriod: 0,
    });
    client.on('error', () => undefined);
    await new Promise<void>((r) => client.once('close', () => r()));
    expect(client.connected).toBe(false);
    client.end(true);
    expect((await fetch(`http://127.0.0.1:${lab.gw.app.wsPort}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${lab.gw.app.wsPort}/mqtt`)).status).toBe(426);
  });

  it('closes an upgrade request that dribbles its headers, within the connect timeout', async () => {
    const slow = await rawConnection(lab.gw.app.wsPort);
    slow.socket.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const started = Date.now();
    // One more byte now and then, as a slow-loris client does; the timeout counts from the start.
    const drip = setInterval(() => slow.socket.write('X'), 300);
    try {
      await eventually(
        async () => slow.closed(),
        (c) => c,
        8000,
      );
    } finally {
      clearInterval(drip);
    }
    expect(slow.text()).not.toContain('101 Switching Protocols');
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('refuses an upgrade request with 12 KiB of headers (431, limit 8 KiB) without upgrading it', async () => {
    const big = await rawConnection(lab.gw.app.wsPort);
    big.socket.write(
      'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Protocol: mqtt\r\n' +
        `Cookie: ${'a'.repeat(12 * 1024)}\r\n\r\n`,
    );
    await eventually(
      async () => big.closed(),
      (c) => c,
      5000,
    );
    expect(big.text()).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('counts the bytes of an unfinished WebSocket message against the pre-authentication budget', async () => {
    const metric = async () =>
      (await readMetric(lab.gw.app.opsPort, 'livinglab_preauth_buffered_bytes')) ?? 0;
    const ws = new WebSocket(wsUrl(), ['mqtt']);
    await once(ws, 'open');
    // A masked binary frame announcing 12,000 bytes, of which 8,000 are sent: ws holds them, waiting
    // for the rest, before the connection gate's stream has seen a byte.
    const header = Buffer.from([0x82, 0x80 | 126, 12_000 >> 8, 12_000 & 0xff, 1, 2, 3, 4]);
    const raw = (ws as unknown as { _socket: Socket })._socket;
    raw.write(Buffer.concat([header, Buffer.alloc(8000, 0x41)]));
    expect(await eventually(metric, (n) => n >= 8000)).toBeLessThan(9000);
    ws.terminate();
    await eventually(metric, (n) => n === 0);
  });

  it('refuses WebSocket connections over the per-address rate before their upgrade, counted as for TCP', async () => {
    const gw = await lab.startGateway({
      devices: [OX],
      config: {
        listeners: { ws: { enabled: true, host: '127.0.0.1', port: 0 } },
        mqtt: { port: 0, host: '127.0.0.1', connectBurst: 2, connectRate: 1 },
      },
    });
    const url = `ws://127.0.0.1:${gw.app.wsPort}/mqtt`;
    const open: WebSocket[] = [];
    for (let i = 0; i < 2; i++) {
      const ws = new WebSocket(url, ['mqtt']);
      await once(ws, 'open');
      open.push(ws);
    }
    const third = new WebSocket(url, ['mqtt']);
    const [err] = (await once(third, 'error')) as [Error];
    expect(err.message).toMatch(/socket hang up|ECONNRESET/);
    expect(await readMetric(gw.app.opsPort, 'livinglab_connections_refused_total{reason="rate-limit"}')).toBe(
      1,
    );
    for (const ws of open) ws.terminate();
  });

  it('holds mqtt.maxConnections for TCP and WebSocket together, counting the refusals', async () => {
    const gw = await lab.startGateway({
      devices: [OX, OX2],
      config: {
        listeners: { ws: { enabled: true, host: '127.0.0.1', port: 0 } },
        mqtt: { port: 0, host: '127.0.0.1', maxConnections: 2 },
      },
    });
    const url = `ws://127.0.0.1:${gw.app.wsPort}/mqtt`;
    const overTcp = await connectDevice(gw.mqttUrl, OX.id);
    const overWs = await connectDevice(url, OX2.id);
    const third = new WebSocket(url, ['mqtt']);
    const [err] = (await once(third, 'error')) as [Error];
    expect(err.message).toMatch(/socket hang up|ECONNRESET/);
    const refused = 'livinglab_connections_refused_total{reason="max-connections"}';
    expect(await readMetric(gw.app.opsPort, refused)).toBe(1);
    // A connection that ends makes room again.
    await overTcp.endAsync();
    const again = await eventually(
      () => connectDevice(url, OX.id).catch(() => undefined),
      (c) => c !== undefined,
    );
    expect(again?.connected).toBe(true);
    await again?.endAsync();
    await overWs.endAsync();
  });
});
