// MQTT over secure WebSocket and the HTTP API over HTTPS (issue 16, Listeners), with a test lab CA
// (test/helpers/certs.ts): MQTT.js over wss:// into the real influxd, a certificate renewal taken
// without dropping a device, security headers on HTTPS, and a research export downloaded over it.
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { createTestCerts, type TestCerts } from '../helpers/certs.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { connectPacket } from '../helpers/raw-mqtt.js';
import { dayFromToday, ndjson, openProject, untilTokens } from '../helpers/research.js';

const OX = { id: 'ox-0401', type: 'pulse-oximeter', site: 'odense', subject: 'p-401' };
const OX2 = { id: 'ox-0402', type: 'pulse-oximeter', site: 'odense', subject: 'p-402' };

let certs: TestCerts;
beforeAll(async () => {
  certs = await createTestCerts();
});
afterAll(async () => {
  await certs?.remove();
});

const lab = useLab(() => ({
  devices: [OX, OX2],
  config: {
    tls: { cert: certs.server.cert, key: certs.server.key },
    listeners: { wss: { enabled: true, host: '127.0.0.1', port: 0 }, mqtts: { host: '127.0.0.1', port: 0 } },
    mqtt: { port: 0, host: '127.0.0.1', connectTimeout: '1s' },
  },
}));

const wssUrl = () => `wss://127.0.0.1:${lab.gw.app.wssPort}/mqtt`;
const recent = (offsetMs = 0) => new Date(Date.now() - 60_000 + offsetMs).toISOString();
const rows = (where: string) =>
  lab.influx.query<Record<string, unknown>>(lab.gw.db, `SELECT * FROM pulse_oximeter WHERE ${where}`);

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** GET over HTTPS trusting only the test lab CA. */
async function httpsGet(path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const req = request(`https://127.0.0.1:${lab.gw.app.httpPort}${path}`, { ca: certs.caPem, headers });
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
async function servedFingerprint(port: number): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: certs.caPem, servername: 'localhost' });
  await once(socket, 'secureConnect');
  const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
  socket.destroy();
  return fp;
}

describe('MQTT over secure WebSocket', () => {
  it('a reading published with MQTT.js over wss:// (lab CA trusted) lands in InfluxDB', async () => {
    const client = await connectDevice(wssUrl(), OX.id, { ca: certs.caPem });
    const ts = recent(1);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0401/telemetry',
      JSON.stringify({ ts, spo2: 96, pulse: 61 }),
      { qos: 1 },
    );
    const found = await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    expect(found[0]).toMatchObject({ device_id: 'ox-0401', spo2: 96, pulse: 61, subject: 'p-401' });
    await client.endAsync();
  });

  it('refuses a client that does not trust the lab CA, and one speaking plain ws:// to the wss port', async () => {
    await expect(connectDevice(wssUrl(), OX2.id)).rejects.toThrow(
      /self-signed|unable to verify|certificate/i,
    );
    await expect(connectDevice(`ws://127.0.0.1:${lab.gw.app.wssPort}/mqtt`, OX2.id)).rejects.toThrow();
  });

  it('closes a plain MQTT CONNECT and a handshake left half-open on the wss port, and goes on serving', async () => {
    const port = lab.gw.app.wssPort;
    const plain = connect({ host: '127.0.0.1', port });
    plain.on('error', () => undefined);
    await once(plain, 'connect');
    plain.write(connectPacket(OX2.id, 'x'));
    // A TLS record header announcing a client hello that never comes.
    const halfOpen = connect({ host: '127.0.0.1', port });
    halfOpen.on('error', () => undefined);
    await once(halfOpen, 'connect');
    halfOpen.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await Promise.all([once(plain, 'close'), once(halfOpen, 'close')]);
    const client = await connectDevice(wssUrl(), OX2.id, { ca: certs.caPem });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('takes a renewed certificate without a restart while a device stays connected', async () => {
    const client = await connectDevice(wssUrl(), OX2.id, { ca: certs.caPem });
    expect(await servedFingerprint(lab.gw.app.wssPort)).toBe(certs.server.fingerprint256);
    const renewed = await certs.renewServer();
    await eventually(
      () => servedFingerprint(lab.gw.app.wssPort),
      (fp) => fp === renewed.fingerprint256,
    );
    // The HTTPS API follows the same files.
    expect(await servedFingerprint(lab.gw.app.httpPort)).toBe(renewed.fingerprint256);
    expect(client.connected).toBe(true);
    const ts = recent(2);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0402/telemetry',
      JSON.stringify({ ts, spo2: 94, pulse: 70 }),
      { qos: 1 },
    );
    await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    await client.endAsync();
  });
});

describe('the HTTP API over HTTPS', () => {
  it('answers /healthz with HSTS and the usual security headers', async () => {
    const res = await httpsGet('/healthz');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok' });
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
  });

  it('does not answer plain HTTP on the HTTPS port', async () => {
    await expect(fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/healthz`)).rejects.toThrow();
    // The gateway goes on serving HTTPS.
    expect((await httpsGet('/healthz')).status).toBe(200);
  });

  it('serves plain HTTP only when http.tls is "off", an explicit choice for a TLS-terminating proxy', async () => {
    const gw = await lab.startGateway({
      config: {
        tls: { cert: certs.server.cert, key: certs.server.key },
        http: { tls: 'off' },
        listeners: { mqtts: { host: '127.0.0.1', port: 0 } },
      },
    });
    const res = await fetch(`http://127.0.0.1:${gw.app.httpPort}/healthz`);
    expect(res.status).toBe(200);
    // HSTS over plain HTTP would be ignored by browsers and mislead whoever reads the headers.
    expect(res.headers.get('strict-transport-security')).toBeNull();
  });

  it('still downloads a research export, with its content type, over HTTPS', async () => {
    const ts = new Date(Date.now() - 3_600_000).toISOString();
    const client = await connectDevice(wssUrl(), OX.id, { ca: certs.caPem });
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0401/telemetry',
      JSON.stringify({ ts, spo2: 98, pulse: 58 }),
      { qos: 1 },
    );
    await client.endAsync();
    await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    let token = '';
    await lab.gw.editRegistry((d0) => {
      let d = addProject(d0, openProject('ox-study', ['pulse-oximeter'], ['spo2']));
      d = setConsent(d, 'ox-study', 'p-401', { on: dayFromToday(-5) });
      const issued = issueToken(d, {
        project: 'ox-study',
        researcher: 'r1',
        expires: new Date(Date.now() + 86_400_000),
      });
      token = issued.token;
      return issued.data;
    });
    await untilTokens(lab.gw, 1);
    const auth = { authorization: `Bearer ${token}` };
    const path = '/api/v1/projects/ox-study/readings?type=pulse-oximeter&format=';
    const csv = await httpsGet(`${path}csv`, auth);
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['x-livinglab-export']).toEqual(expect.any(String));
    expect(csv.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(csv.body).toContain('spo2');
    const nd = await httpsGet(`${path}ndjson`, auth);
    expect(nd.headers['content-type']).toBe('application/x-ndjson');
    const lines = await ndjson(new Response(nd.body));
    expect(lines.map((l) => l.spo2)).toContain(98);
    expect(JSON.stringify(lines)).not.toContain('p-401');
  });
});
