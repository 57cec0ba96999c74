// Review of the login defences of issue 13 #10, as an attacker who knows (or probes for) device ids:
// a wrong password for a cheap device hash must cost as much as an unknown username, a username
// lock must not keep a device with the right (already verified) password out.
import { once } from 'node:events';
import { connect } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAccount } from '../../src/registry/edit.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { connackCode, connectDevice, eventually } from '../helpers/mqtt.js';

let influx: Influxd;
let gw: TestGateway;
const PROBED = { id: 'bp-0301', type: 'blood-pressure', site: 'aarhus' };
const VICTIM = { id: 'bp-0302', type: 'blood-pressure', site: 'aarhus' };

beforeAll(async () => {
  influx = await startInfluxd();
  gw = await startGateway({
    influxUrl: influx.url,
    devices: [PROBED, VICTIM],
    config: {
      auth: {
        usernameBackoffAfter: 3,
        addressBackoffAfter: 100_000,
        backoffBase: '3s',
        backoffMax: '6s',
      },
    },
  });
  const reloads = await metric('livinglab_registry_reloads_total');
  // A staff account at a real cost: the dummy for unknown usernames matches it, devices are cheaper.
  await gw.editRegistry((d) =>
    addAccount(d, {
      id: 'staff-strong',
      role: 'staff',
      passwordHash: hashSecretSync('a passphrase', 20_000),
    }),
  );
  await eventually(
    () => metric('livinglab_registry_reloads_total'),
    (n) => (n ?? 0) > (reloads ?? 0),
  );
});

afterAll(async () => {
  await gw?.stop();
  await influx?.stop();
});

async function metric(series: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${gw.app.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const connectPacket = (clientId: string, username: string, password: string) =>
  mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId,
    username,
    password: Buffer.from(password),
  });

/**
 * Fails `username`'s login three times from `localAddress`; resolves once the third failure has
 * locked it (its refusal is still held, so the lock lasts a few seconds more).
 */
async function lockOut(username: string, localAddress: string): Promise<void> {
  const failed = (await metric('livinglab_auth_failures_total{reason="wrong-password"}')) ?? 0;
  const unknown = (await metric('livinglab_auth_failures_total{reason="unknown-user"}')) ?? 0;
  for (let i = 0; i < 3; i++) {
    const socket = connect({ port: gw.app.mqttPort, host: '127.0.0.1', localAddress });
    socket.on('error', () => undefined);
    // Read (and drop) the CONNACK, or the socket never sees its end.
    socket.resume();
    await once(socket, 'connect');
    socket.write(connectPacket(`${username}-probe-${i}`, username, `guess ${i}`));
    if (i < 2) await once(socket, 'close');
  }
  await eventually(
    async () =>
      ((await metric('livinglab_auth_failures_total{reason="wrong-password"}')) ?? 0) +
      ((await metric('livinglab_auth_failures_total{reason="unknown-user"}')) ?? 0),
    (n) => n >= failed + unknown + 3,
  );
}

describe('login defences under review', () => {
  it('costs a wrong password for a device as much hashing as an unknown username', async () => {
    const dummy = (await metric('livinglab_password_hashes_total{kind="dummy"}')) ?? 0;
    const real = (await metric('livinglab_password_hashes_total{kind="real"}')) ?? 0;
    expect(
      await connackCode(gw.mqttUrl, { clientId: PROBED.id, username: PROBED.id, password: 'wrong' }),
    ).toBe(4);
    expect(await metric('livinglab_password_hashes_total{kind="real"}')).toBe(real + 1);
    // The device's 10-iteration hash is padded with a dummy up to the staff account's 20,000.
    expect(await metric('livinglab_password_hashes_total{kind="dummy"}')).toBe(dummy + 1);
  });

  it('lets a device with its verified password in while another address has its username locked', async () => {
    const first = await connectDevice(gw.mqttUrl, VICTIM.id);
    await first.endAsync();
    await lockOut(VICTIM.id, '127.0.0.2');
    // The right, already verified password gets in during the lock, and its reading is stored.
    const device = await connectDevice(gw.mqttUrl, VICTIM.id);
    const ts = new Date(Date.now() - 1000).toISOString();
    await device.publishAsync(
      `lab/aarhus/blood-pressure/${VICTIM.id}/telemetry`,
      JSON.stringify({ ts, systolic: 151, diastolic: 95 }),
      { qos: 1 },
    );
    await device.endAsync();
    const rows = await eventually(
      () => influx.query(gw.db, 'SELECT systolic FROM blood_pressure WHERE systolic = 151'),
      (r) => r.length === 1,
    );
    expect(rows).toHaveLength(1);
  });

  it('logs a refused login of a 3.5-KB username and client id in a short line', async () => {
    const name = `ghost-${'g'.repeat(3500)}`;
    expect(await connackCode(gw.mqttUrl, { clientId: `c-${name}`, username: name, password: 'x' })).toBe(4);
    const line = gw.logLines().find((l) => l.msg === 'connection refused' && l.reason === 'unknown username');
    expect(line).toBeDefined();
    expect(JSON.stringify(line).length).toBeLessThan(1000);
    expect(String(line?.username)).toMatch(/^ghost-g+… \(3506 characters\)$/);
  });

  // Last: it stops the gateway.
  it('stops while a client is half-way through its CONNECT and another holds a refusal', async () => {
    await lockOut('stopper', '127.0.0.4');
    const socket = connect({ port: gw.app.mqttPort, host: '127.0.0.1', localAddress: '127.0.0.5' });
    socket.on('error', () => undefined);
    socket.resume();
    await once(socket, 'connect');
    socket.write(connectPacket('slow', 'slow', 'x').subarray(0, 10));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await gw.app.stop();
    await closed;
    expect(socket.destroyed).toBe(true);
  });
});
