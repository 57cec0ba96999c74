// What a client can cost the gateway before it logs in (issue 13 #2): raw sockets that announce a
// large CONNECT and send part of it, CONNECTs over their own limit, and connection floods from one
// address, against the real gateway.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD, type TestGateway } from '../helpers/gateway.js';
import { readMetric } from '../helpers/metrics.js';
import { connackCode, connectDevice, eventually } from '../helpers/mqtt.js';
import { connectPacket, fixedHeader } from '../helpers/raw-mqtt.js';

const A = { id: 'bp-0101', type: 'blood-pressure', site: 'aarhus' };

const lab = useLab();

/** A metric's value, or undefined when /metrics does not have it. */
const metric = (gw: TestGateway, series: string) => readMetric(gw.app.opsPort, series);

interface RawClient {
  socket: Socket;
  received: () => number;
  data: () => Buffer;
  closed: () => boolean;
  /** Resolves when everything written so far has left this process (or the socket is gone). */
  flushed: Promise<void>;
}

/** A raw TCP client that sends `bytes` and never reads a CONNACK as MQTT would. */
async function rawClient(port: number, bytes: Buffer, localAddress = '127.0.0.1'): Promise<RawClient> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
  });
  await Promise.race([once(socket, 'connect'), once(socket, 'close')]);
  const flushed = new Promise<void>((resolve) => {
    if (closed) return resolve();
    socket.write(bytes, () => resolve());
    socket.once('close', () => resolve());
  });
  const data = () => Buffer.concat(chunks);
  return { socket, received: () => data().length, data, closed: () => closed, flushed };
}

describe('before login: CONNECT size and buffer budget', () => {
  const budget = 1024 * 1024;
  const site = lab.useGateway({ devices: [A], config: { mqtt: { preAuthBufferBudget: budget } } });

  it('closes 200 sockets announcing a 250 KB CONNECT at its header, holding none of their bytes', async () => {
    const port = site.gw.app.mqttPort;
    const attack = Buffer.concat([fixedHeader(1, 250_000), Buffer.alloc(200_000, 0x41)]);
    const clients = await Promise.all(Array.from({ length: 200 }, () => rawClient(port, attack)));
    let highest = 0;
    await eventually(
      async () => {
        highest = Math.max(highest, (await metric(site.gw, 'livinglab_preauth_buffered_bytes')) ?? 0);
        return clients.filter((c) => c.closed()).length;
      },
      (n) => n === 200,
      8000,
    );
    // Closed by the gateway long before the 10-s connect timeout, none of them answered.
    expect(clients.every((c) => c.received() === 0)).toBe(true);
    expect(await metric(site.gw, 'livinglab_connections_refused_total{reason="connect-too-large"}')).toBe(
      200,
    );
    expect(highest).toBeLessThanOrEqual(budget);
    expect(await metric(site.gw, 'livinglab_preauth_buffered_bytes')).toBe(0);
  });

  it('keeps unfinished CONNECTs under the budget by closing the largest; a device still logs in and its reading is stored', async () => {
    const port = site.gw.app.mqttPort;
    // 300 × 6 KB of CONNECTs within the CONNECT limit but never finished: 1.8 MB against a 1 MiB budget.
    const partial = Buffer.concat([fixedHeader(1, 8000), Buffer.alloc(6000, 0x41)]);
    const clients: RawClient[] = [];
    for (let i = 0; i < 300; i++) clients.push(await rawClient(port, partial));
    await Promise.all(clients.map((c) => c.flushed));
    const refused = await eventually(
      () => metric(site.gw, 'livinglab_connections_refused_total{reason="preauth-budget"}'),
      (n) => (n ?? 0) > 0,
    );
    expect(await metric(site.gw, 'livinglab_preauth_buffered_bytes')).toBeLessThanOrEqual(budget);
    await eventually(
      async () => clients.filter((c) => c.closed()).length,
      (n) => n === refused,
    );
    // A device connecting now is not one of the victims: it sends its whole CONNECT at once.
    const device = await connectDevice(site.gw.mqttUrl, A.id);
    const ts = new Date(Date.now() - 1000).toISOString();
    await device.publishAsync(
      'lab/aarhus/blood-pressure/bp-0101/telemetry',
      JSON.stringify({ ts, systolic: 131, diastolic: 81 }),
      { qos: 1 },
    );
    await device.endAsync();
    const rows = await eventually(
      () => lab.influx.query(site.gw.db, 'SELECT systolic FROM blood_pressure WHERE systolic = 131'),
      (r) => r.length === 1,
    );
    expect(rows).toHaveLength(1);
    for (const c of clients) c.socket.destroy();
    await eventually(
      () => metric(site.gw, 'livinglab_preauth_buffered_bytes'),
      (n) => n === 0,
    );
  });

  it('closes a complete CONNECT over mqtt.maxConnectPacketSize (a 10 KB will) before any CONNACK, even with good credentials', async () => {
    const bigConnect = connectPacket(A.id, PASSWORD, {
      will: {
        topic: 'lab/aarhus/blood-pressure/bp-0101/status',
        payload: Buffer.alloc(10_000, 0x41),
        qos: 0,
        retain: false,
      },
    });
    const before =
      (await metric(site.gw, 'livinglab_connections_refused_total{reason="connect-too-large"}')) ?? 0;
    const c = await rawClient(site.gw.app.mqttPort, bigConnect);
    await eventually(
      async () => c.closed(),
      (closed) => closed,
      5000,
    );
    expect(c.received()).toBe(0);
    expect(await metric(site.gw, 'livinglab_connections_refused_total{reason="connect-too-large"}')).toBe(
      before + 1,
    );
  });
});

describe('before login: new connections per address', () => {
  const site = lab.useGateway({ devices: [A], config: { mqtt: { connectRate: 1, connectBurst: 3 } } });

  it('refuses an address over its connection rate, counted in /metrics, while another address still logs in', async () => {
    const opts = { clientId: A.id, username: A.id, password: PASSWORD };
    for (let i = 0; i < 3; i++) expect(await connackCode(site.gw.mqttUrl, opts)).toBe(0);
    const login = connectPacket(A.id, PASSWORD);
    // One token a second comes back: of three quick attempts at least two find the bucket empty.
    const attempts = await Promise.all([0, 1, 2].map(() => rawClient(site.gw.app.mqttPort, login)));
    await eventually(
      async () => attempts.filter((c) => c.closed() && c.received() === 0).length,
      (n) => n >= 2,
      5000,
    );
    expect(
      await metric(site.gw, 'livinglab_connections_refused_total{reason="rate-limit"}'),
    ).toBeGreaterThanOrEqual(2);
    for (const c of attempts) c.socket.destroy();
    // Another address (a loopback alias) has its own bucket: CONNACK 0.
    const other = await rawClient(site.gw.app.mqttPort, login, '127.0.0.2');
    const connack = await eventually(
      async () => other.data(),
      (d) => d.length >= 4 || other.closed(),
      5000,
    );
    expect([...connack.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    other.socket.destroy();
  });
});
