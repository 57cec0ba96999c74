// Wrong-password floods (issue 13 #10): an unknown username costs a dummy hash like a known one,
// failed logins back off per username, and a flood from one address neither fills the hashing
// queue for everyone nor keeps a device from logging in and having its reading stored.
import { once } from 'node:events';
import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { addAccount } from '../../src/registry/edit.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { readMetric } from '../helpers/metrics.js';
import { connackCode, connectDevice, eventually } from '../helpers/mqtt.js';
import { connectPacket, rawLogin as rawMqttLogin } from '../helpers/raw-mqtt.js';

const DEVICE = { id: 'bp-0201', type: 'blood-pressure', site: 'aarhus' };
// A staff password at a real cost, so that a dummy hash has something to match.
const STRONG_ITERATIONS = 50_000;

const lab = useLab({
  devices: [DEVICE],
  staff: ['staff-1', 'staff-2'],
  config: {
    auth: {
      usernameBackoffAfter: 3,
      addressBackoffAfter: 100_000,
      // Long enough that the right password, sent once the third check is seen in /metrics, still
      // falls inside the lock on a loaded machine (1 s was missed there once).
      backoffBase: '3s',
      backoffMax: '12s',
      maxPendingVerifications: 8,
    },
  },
});
beforeAll(async () => {
  const reloads = await metric('livinglab_registry_reloads_total');
  await lab.gw.editRegistry((d) =>
    addAccount(d, {
      id: 'staff-strong',
      role: 'staff',
      passwordHash: hashSecretSync('a long staff passphrase', STRONG_ITERATIONS),
    }),
  );
  await eventually(
    () => metric('livinglab_registry_reloads_total'),
    (n) => (n ?? 0) > (reloads ?? 0),
  );
});

/** A metric's value, or undefined when /metrics does not have it. */
const metric = (series: string) => readMetric(lab.gw.app.opsPort, series);

/** One login attempt over a raw socket from `localAddress`; resolves the CONNACK code, or -1 if closed without one. */
const rawLogin = (username: string, password: string, localAddress: string) =>
  rawMqttLogin({ port: lab.gw.app.mqttPort, username, password, localAddress });

describe('wrong passwords and unknown users', () => {
  it('hashes a dummy for an unknown username, as a known user costs a real hash', async () => {
    const dummy = (await metric('livinglab_password_hashes_total{kind="dummy"}')) ?? 0;
    const real = (await metric('livinglab_password_hashes_total{kind="real"}')) ?? 0;
    expect(
      await connackCode(lab.gw.mqttUrl, { clientId: 'ghost-1', username: 'ghost-1', password: 'x' }),
    ).toBe(4);
    expect(await metric('livinglab_password_hashes_total{kind="dummy"}')).toBe(dummy + 1);
    expect(await metric('livinglab_password_hashes_total{kind="real"}')).toBe(real);
    expect(
      await connackCode(lab.gw.mqttUrl, { clientId: 'staff-1', username: 'staff-1', password: 'wrong' }),
    ).toBe(4);
    expect(await metric('livinglab_password_hashes_total{kind="real"}')).toBe(real + 1);
    // staff-1's cheap hash is padded with a dummy up to staff-strong's cost (auth-review.test.ts).
    expect(await metric('livinglab_password_hashes_total{kind="dummy"}')).toBe(dummy + 2);
    expect(await metric('livinglab_auth_failures_total{reason="unknown-user"}')).toBeGreaterThanOrEqual(1);
    const refusal = lab.gw.logLines().find((l) => l.msg === 'connection refused' && l.username === 'ghost-1');
    expect(refusal).toMatchObject({ reason: 'unknown username' });
  });

  it('after 3 failures holds the refusal for the backoff delay and refuses even the right password meanwhile', async () => {
    const login = (password: string) =>
      connackCode(lab.gw.mqttUrl, { clientId: 'staff-2', username: 'staff-2', password });
    expect(await login('wrong 1')).toBe(4);
    expect(await login('wrong 2')).toBe(4);
    const backoffBefore = (await metric('livinglab_auth_failures_total{reason="backoff"}')) ?? 0;
    const realBefore = (await metric('livinglab_password_hashes_total{kind="real"}')) ?? 0;
    const started = Date.now();
    const third = login('wrong 3');
    // The third failure locks staff-2 for 3 s; wait until its check has run, then try the right one.
    await eventually(
      () => metric('livinglab_password_hashes_total{kind="real"}'),
      (n) => (n ?? 0) > realBefore,
    );
    const during = login(PASSWORD);
    // A client that gives up while its refusal is held must not trouble the broker when it is sent.
    const quitter = connect({ port: lab.gw.app.mqttPort, host: '127.0.0.1' });
    quitter.on('error', () => undefined);
    await once(quitter, 'connect');
    quitter.end(connectPacket('staff-2', 'wrong 4'));
    expect(await third).toBe(4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2950);
    expect(await during).toBe(4);
    await eventually(
      () => metric('livinglab_auth_failures_total{reason="backoff"}'),
      (n) => n === backoffBefore + 2,
    );
    // Refused without a check: the right password was never hashed during the lock.
    expect(await metric('livinglab_password_hashes_total{kind="real"}')).toBe(realBefore + 1);
    // Once the lock is over, the right password gets in and clears the failures.
    await eventually(
      () => login(PASSWORD),
      (code) => code === 0,
      10_000,
    );
  });

  it('keeps a flood of wrong passwords from one address to its share of the hashing queue; a device still logs in and its reading is stored', async () => {
    let flooding = true;
    const codes: number[] = [];
    const flooder = async (k: number) => {
      for (let i = 0; flooding; i++) {
        const user = i % 2 === 0 ? 'staff-strong' : `nobody-${k}-${i}`;
        codes.push(await rawLogin(user, `guess ${k}-${i}`, '127.0.0.2'));
      }
    };
    const flood = Promise.all(Array.from({ length: 24 }, (_, k) => flooder(k)));
    try {
      await eventually(
        () => metric('livinglab_auth_failures_total{reason="busy"}'),
        (n) => (n ?? 0) > 0,
      );
      const device = await connectDevice(lab.gw.mqttUrl, DEVICE.id);
      const ts = new Date(Date.now() - 1000).toISOString();
      await device.publishAsync(
        'lab/aarhus/blood-pressure/bp-0201/telemetry',
        JSON.stringify({ ts, systolic: 142, diastolic: 92 }),
        { qos: 1 },
      );
      await device.endAsync();
    } finally {
      flooding = false;
      await flood;
    }
    const rows = await eventually(
      () => lab.influx.query(lab.gw.db, 'SELECT systolic FROM blood_pressure WHERE systolic = 142'),
      (r) => r.length === 1,
    );
    expect(rows).toHaveLength(1);
    // The excess was refused with CONNACK 3 (server unavailable), never queued without limit.
    expect(codes).toContain(3);
    expect(codes.every((c) => c === 3 || c === 4 || c === -1)).toBe(true);
  });
});
