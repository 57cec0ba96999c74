// `livinglab certs init|issue` run as a user runs them, and their files used for real: a gateway
// serves MQTT over TLS with the server certificate, and mosquitto_pub logs a device in with the
// device certificate alone.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRegistryFile } from '../../src/registry/file.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { eventually, mosquittoPub } from '../helpers/mqtt.js';

const lab = useLab();
const OX = { id: 'ox-0301', type: 'pulse-oximeter', site: 'odense' };
const mode = (file: string) => statSync(file).mode & 0o777;

describe('livinglab certs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'll-certs-cli-'));
  const caDir = join(dir, 'ca');
  const devDir = join(dir, 'devices');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('init writes a CA and a server certificate for the given hosts, 0600', async () => {
    const r = await runCli(['certs', 'init', '--out', caDir, '--host', 'localhost', '127.0.0.1']);
    expect(r.code).toBe(0);
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key'])
      expect(mode(join(caDir, f))).toBe(0o600);
    const ca = new X509Certificate(readFileSync(join(caDir, 'ca.crt')));
    const server = new X509Certificate(readFileSync(join(caDir, 'server.crt')));
    expect(ca.ca).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(r.stderr).toContain(`--tls-cert ${join(caDir, 'server.crt')}`);
  });

  it('init refuses to overwrite an existing CA key (exit 2), and leaves it as it was', async () => {
    const before = readFileSync(join(caDir, 'ca.key'), 'utf8');
    const r = await runCli(['certs', 'init', '--out', caDir, '--host', 'localhost']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write ${join(caDir, 'ca.crt')}: it exists already`);
    expect(readFileSync(join(caDir, 'ca.key'), 'utf8')).toBe(before);
  });

  it('issue writes a device certificate (CN = device id) signed by the CA, 0600', async () => {
    const r = await runCli(['certs', 'issue', '--device', OX.id, '--ca-dir', caDir, '--out', devDir]);
    expect(r.code).toBe(0);
    const cert = new X509Certificate(readFileSync(join(devDir, `${OX.id}.crt`)));
    expect(cert.subject).toBe(`CN=${OX.id}`);
    expect(cert.verify(new X509Certificate(readFileSync(join(caDir, 'ca.crt'))).publicKey)).toBe(true);
    expect(mode(join(devDir, `${OX.id}.key`))).toBe(0o600);
    expect(r.stderr).toContain(`livinglab devices certificate ${OX.id} lab-ca`);
  });

  it('issue refuses a device id that is not a valid id, and a folder without a CA', async () => {
    const bad = await runCli(['certs', 'issue', '--device', 'Bad_Id', '--ca-dir', caDir, '--out', devDir]);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('device id "Bad_Id" must be')]);
    const noCa = await runCli(['certs', 'issue', '--device', 'ox-9', '--ca-dir', devDir, '--out', devDir]);
    expect([noCa.code, noCa.stderr]).toEqual([
      2,
      expect.stringContaining(`cannot read ${join(devDir, 'ca.crt')}`),
    ]);
  });

  it('devices certificate sets the rule, and the issued files log the device in over TLS', async () => {
    const gw = await lab.startGateway({
      devices: [OX],
      config: {
        tls: { cert: join(caDir, 'server.crt'), key: join(caDir, 'server.key'), ca: join(caDir, 'ca.crt') },
        listeners: { mqtts: { port: 0, host: '127.0.0.1' } },
      },
    });
    const set = await runCli(['devices', 'certificate', OX.id, 'lab-ca', '--registry', gw.registryFile]);
    expect(set.code).toBe(0);
    expect((await readRegistryFile(gw.registryFile)).devices[0]?.certificate).toEqual({ issuer: 'lab-ca' });
    await eventually(
      async () => gw.app.registry.current().devices.get(OX.id)?.certificate,
      (c) => c !== undefined,
    );
    const ts = new Date(Date.now() - 1000).toISOString();
    const pub = await mosquittoPub([
      ...['-h', 'localhost', '-p', String(gw.app.broker.tlsPort), '--cafile', join(caDir, 'ca.crt')],
      ...['--cert', join(devDir, `${OX.id}.crt`), '--key', join(devDir, `${OX.id}.key`), '-i', OX.id],
      ...[
        '-q',
        '1',
        '-t',
        `lab/odense/pulse-oximeter/${OX.id}/telemetry`,
        '-m',
        JSON.stringify({ ts, spo2: 88, pulse: 64 }),
      ],
    ]);
    expect(pub).toEqual({ code: 0, stderr: '' });
    await eventually(
      () =>
        lab.influx.query(gw.db, `SELECT * FROM pulse_oximeter WHERE spo2 = 88 AND device_id = '${OX.id}'`),
      (rows) => rows.length === 1,
    );
  });

  it('--help lists init and issue', async () => {
    const r = await runCli(['certs', '--help']);
    expect(r.stdout).toMatch(/init \[options\][\s\S]*issue \[options\]/);
  });
});
