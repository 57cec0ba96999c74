// Mutual TLS: a device logs in with a client certificate instead of a password, against a real
// gateway and influxd, with mosquitto_pub (--cafile --cert --key) and MQTT.js. Accepted for its own
// device only; refused for another device id, a disabled device, another CA, an expired
// certificate, a device without a certificate rule; an open connection closed when the device is
// disabled.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { setDeviceEnabled } from '../../src/registry/edit.js';
import { type CertFiles, createTestCerts, type TestCerts } from '../helpers/certs.js';
import { useLab } from '../helpers/fixture.js';
import type { TestGateway } from '../helpers/gateway.js';
import { connackCode, connectDevice, eventually, mosquittoPub } from '../helpers/mqtt.js';

const LABCA = {
  id: 'ox-0201',
  type: 'pulse-oximeter',
  site: 'odense',
  certificate: { issuer: 'lab-ca' as const },
};
const OTHER = {
  id: 'ox-0202',
  type: 'pulse-oximeter',
  site: 'odense',
  certificate: { issuer: 'lab-ca' as const },
};
const OFF = {
  id: 'ox-0203',
  type: 'pulse-oximeter',
  site: 'odense',
  certificate: { issuer: 'lab-ca' as const },
};
const NORULE = { id: 'ox-0204', type: 'pulse-oximeter', site: 'odense' };
const KICKED = {
  id: 'ox-0205',
  type: 'pulse-oximeter',
  site: 'odense',
  certificate: { issuer: 'lab-ca' as const },
};
// Pinned to one certificate: filled in once the test certificates exist.
const PINNED = { id: 'ox-0206', type: 'pulse-oximeter', site: 'odense' };

let certs: TestCerts;
let pinnedCert: CertFiles;
beforeAll(async () => {
  certs = await createTestCerts();
  pinnedCert = await certs.device(PINNED.id);
});
afterAll(() => certs?.remove());

const lab = useLab(() => ({
  devices: [
    LABCA,
    OTHER,
    OFF,
    NORULE,
    KICKED,
    { ...PINNED, certificate: { fingerprint256: pinnedCert.fingerprint256 } },
  ],
  config: {
    tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.caFile },
    listeners: { mqtts: { port: 0, host: '127.0.0.1' } },
  },
}));

const tlsPort = (gw: TestGateway) => String(gw.app.broker.tlsPort);
const mqttsUrl = (gw: TestGateway) => `mqtts://127.0.0.1:${tlsPort(gw)}`;
const topicOf = (id: string) => `lab/odense/pulse-oximeter/${id}/telemetry`;
const reading = (spo2: number) =>
  JSON.stringify({ ts: new Date(Date.now() - 1000).toISOString(), spo2, pulse: 70 });

/** MQTT.js over TLS with a client certificate and no password; resolves the CONNACK code. */
const certConnack = (gw: TestGateway, clientId: string, files: CertFiles, username?: string) =>
  connackCode(mqttsUrl(gw), {
    clientId,
    ...(username ? { username } : {}),
    ca: certs.caPem,
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    servername: 'localhost',
  });

/** mosquitto_pub with --cafile --cert --key and no -u/-P. */
const pubWithCert = (gw: TestGateway, clientId: string, files: CertFiles, spo2: number) =>
  mosquittoPub([
    ...[
      '-h',
      '127.0.0.1',
      '-p',
      tlsPort(gw),
      '--cafile',
      certs.caFile,
      '--cert',
      files.cert,
      '--key',
      files.key,
    ],
    ...['-i', clientId, '-q', '1', '-t', topicOf(clientId), '-m', reading(spo2)],
  ]);

describe('client certificate instead of a password', () => {
  it('mosquitto_pub with a lab-CA certificate (CN = device id) and no password: the reading lands', async () => {
    const pub = await pubWithCert(lab.gw, LABCA.id, await certs.device(LABCA.id), 91);
    expect(pub).toEqual({ code: 0, stderr: '' });
    const rows = await eventually(
      () => lab.influx.query(lab.gw.db, `SELECT * FROM pulse_oximeter WHERE spo2 = 91`),
      (r) => r.length === 1,
    );
    expect(rows[0]).toMatchObject({ device_id: LABCA.id, pulse: 70 });
  });

  it('refuses the certificate for another device id (mosquitto_pub: not authorised; MQTT.js: CONNACK 5)', async () => {
    const mine = await certs.device(LABCA.id);
    const pub = await pubWithCert(lab.gw, OTHER.id, mine, 92);
    expect(pub.code).not.toBe(0);
    expect(pub.stderr).toMatch(/not authori[sz]ed/i);
    expect(await certConnack(lab.gw, OTHER.id, mine)).toBe(5);
  });

  it('refuses a username that differs from the client id with CONNACK 2', async () => {
    expect(await certConnack(lab.gw, LABCA.id, await certs.device(LABCA.id), OTHER.id)).toBe(2);
  });

  it('accepts a username equal to the client id', async () => {
    expect(await certConnack(lab.gw, LABCA.id, await certs.device(LABCA.id), LABCA.id)).toBe(0);
  });

  it('refuses a disabled device even with a valid certificate (CONNACK 5)', async () => {
    await lab.gw.editRegistry((d) => setDeviceEnabled(d, OFF.id, false));
    await eventually(
      async () => lab.gw.app.registry.current().devices.get(OFF.id)?.enabled,
      (e) => e === false,
    );
    expect(await certConnack(lab.gw, OFF.id, await certs.device(OFF.id))).toBe(5);
  });

  it('refuses a certificate from another CA (CONNACK 5)', async () => {
    expect(await certConnack(lab.gw, LABCA.id, await certs.foreignDevice(LABCA.id))).toBe(5);
    const log = lab.gw
      .logLines()
      .find((l) => l.msg === 'connection refused' && String(l.reason).includes('not accepted'));
    expect(log?.reason).toMatch(/client certificate not accepted: /);
    // Counted like any failed login (livinglab_auth_failures_total{reason="certificate"}).
    expect(lab.gw.app.broker.guardStats.auth.certificate).toBeGreaterThan(0);
  });

  it('refuses an expired certificate from the lab CA (CONNACK 5, reason CERT_HAS_EXPIRED)', async () => {
    expect(await certConnack(lab.gw, LABCA.id, await certs.expiredDevice(LABCA.id))).toBe(5);
    expect(
      lab.gw
        .logLines()
        .some((l) => l.msg === 'connection refused' && String(l.reason).includes('CERT_HAS_EXPIRED')),
    ).toBe(true);
  });

  it('refuses a valid certificate for a device that has no certificate rule (CONNACK 5)', async () => {
    expect(await certConnack(lab.gw, NORULE.id, await certs.device(NORULE.id))).toBe(5);
  });

  it('a pinned fingerprint accepts that certificate only, not another one for the same id', async () => {
    expect(await certConnack(lab.gw, PINNED.id, pinnedCert)).toBe(0);
    expect(await certConnack(lab.gw, PINNED.id, await certs.device(PINNED.id))).toBe(5);
  });

  it('closes the open certificate connection of a device that gets disabled', async () => {
    const files = await certs.device(KICKED.id);
    const client = await connectDevice(mqttsUrl(lab.gw), KICKED.id, {
      username: undefined,
      password: undefined,
      ca: certs.caPem,
      cert: readFileSync(files.cert),
      key: readFileSync(files.key),
      servername: 'localhost',
    });
    onTestFinished(() => {
      client.end(true);
    });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await lab.gw.editRegistry((d) => setDeviceEnabled(d, KICKED.id, false));
    await closed;
    expect(
      lab.gw
        .logLines()
        .some(
          (l) => l.msg === 'disconnecting client: registry no longer allows it' && l.clientId === KICKED.id,
        ),
    ).toBe(true);
  });
});
