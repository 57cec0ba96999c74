// Issue 15, "the ten most important untested paths", items 2, 4 and 5: a real token id with a wrong
// secret, an export whose InfluxDB link breaks mid-stream (HTTP side), and the broker's safety paths
// (retain stripped from health data, a bad status payload, no PUBACK when the spool append fails).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { addProject, issueToken, parseToken, setConsent } from '../../src/registry/research.js';
import type { RegistryData } from '../../src/registry/types.js';
import { startCutProxy } from '../helpers/cut-proxy.js';
import { createDiskFaults } from '../helpers/disk-faults.js';
import { useLab } from '../helpers/fixture.js';
import type { TestGateway } from '../helpers/gateway.js';
import { collect, connectDevice, eventually } from '../helpers/mqtt.js';
import { dayFromToday, openProject, untilTokens } from '../helpers/research.js';

const OX = { id: 'ox-0101', type: 'pulse-oximeter', site: 'odense', subject: 'p-101' };
const OX_TOPIC = 'lab/odense/pulse-oximeter/ox-0101';
const lab = useLab({ devices: [OX], staff: ['staff-1'] });

const reading = (spo2: number) => JSON.stringify({ ts: new Date().toISOString(), spo2, pulse: 70 });

/** Adds a bed-sensor project with p-big consented and one token; resolves the token. */
async function projectWithToken(gw: TestGateway, id: string, tokensBefore: number): Promise<string> {
  let token = '';
  await gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, openProject(id, ['bed-sensor'], ['heartRate']));
    d = setConsent(d, id, 'p-big', { on: dayFromToday(-10) });
    const r = issueToken(d, { project: id, researcher: 'r', expires: new Date(Date.now() + 86_400_000) });
    token = r.token;
    return r.data;
  });
  await untilTokens(gw, tokensBefore + 1);
  return token;
}

const readings = (gw: TestGateway, project: string, token: string) =>
  fetch(
    `http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/${project}/readings?type=bed-sensor&format=ndjson`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );

describe('item 2: research API tokens', () => {
  it('answers 401 for a real token id with a wrong secret, 200 for the right one', async () => {
    const token = await projectWithToken(lab.gw, 'tok-a', 0);
    const { id, secret } = parseToken(token) as { id: string; secret: string };
    const wrong = `ll_${id}_${secret.slice(0, -4)}${secret.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    const refused = await readings(lab.gw, 'tok-a', wrong);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: 'unknown token' });
    expect((await readings(lab.gw, 'tok-a', token)).status).toBe(200);
  });
});

describe('item 2: a project deleted from the registry file', () => {
  it('is refused while a token names it; deleted with its tokens, the token gets 401', async () => {
    const gw = await lab.startGateway({ devices: [] });
    const token = await projectWithToken(gw, 'gone', 0);
    expect((await readings(gw, 'gone', token)).status).toBe(200);
    await gw.editRegistry((d) => ({ ...d, projects: d.projects.filter((p) => p.id !== 'gone') }));
    const refused = await eventually(
      async () => gw.logLines().filter((l) => JSON.stringify(l).includes('which is not under projects')),
      (l) => l.length > 0,
    );
    expect(JSON.stringify(refused[0])).toMatch(
      /token [a-z0-9]+ names project \\"gone\\", which is not under projects/,
    );
    // The file as it is can no longer be read; write the whole registry without the project's tokens.
    const { data } = gw.app.registry.current();
    await writeRegistryFile(gw.registryFile, {
      ...data,
      projects: data.projects.filter((p) => p.id !== 'gone'),
      tokens: data.tokens.filter((t) => t.project !== 'gone'),
    });
    await untilTokens(gw, 0);
    const res = await readings(gw, 'gone', token);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'unknown token' });
  });
});

const BIG_ROWS = 60_000;
const T0 = Date.now() - 2 * 86_400_000;
const bedLine = (i: number) =>
  `bed_sensor,device_id=bed-big,device_type=bed-sensor,schema_version=1,site=s,subject=p-big heartRate=${50 + (i % 40)}i,occupied=true ${(T0 + i * 1000) * 1_000_000}`;

interface AuditLine {
  event: string;
  export: string;
  via?: string;
  status?: string;
  rows?: number;
  error?: string;
}

describe('item 4: an export whose InfluxDB link breaks mid-stream, over HTTP', () => {
  it('ends the chunked response as an error, not a complete body, and audits it as failed', {
    timeout: 60_000,
  }, async () => {
    const body = Array.from({ length: BIG_ROWS }, (_, i) => bedLine(i)).join('\n');
    const res0 = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, { method: 'POST', body });
    expect(res0.status).toBe(204);
    // Past the first chunks (about 0.5 MB each, uncompressed), so the 200 and some rows have gone out.
    const proxy = await startCutProxy(lab.influx.url, 2_000_000);
    onTestFinished(() => proxy.stop());
    const gw2 = await lab.startGateway({ influxUrl: proxy.url, config: { influx: { db: lab.gw.db } } });
    const token = await projectWithToken(gw2, 'cut', 0);
    const res = await readings(gw2, 'cut', token);
    expect(res.status).toBe(200);
    const id = res.headers.get('x-livinglab-export') as string;
    // The body does not end normally: fetch sees the connection end without the last chunk.
    await expect(res.text()).rejects.toThrow(/terminated/);
    expect(proxy.cuts()).toBeGreaterThan(0);
    const file = join(gw2.dir, 'data', 'audit.ndjson');
    const lines = await eventually(
      async () =>
        (await readFile(file, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as AuditLine)
          .filter((l) => l.export === id),
      (l) => l.some((e) => e.event === 'export-ended'),
    );
    const end = lines.find((l) => l.event === 'export-ended');
    expect(end).toMatchObject({ via: 'api', status: 'failed', error: expect.stringMatching(/\S/) });
    expect(end?.rows).toBeGreaterThan(0);
    expect(end?.rows).toBeLessThan(BIG_ROWS);
  });

  it('a link that breaks before the first row: 502 naming InfluxDB, never a 500 or a short 200', {
    timeout: 60_000,
  }, async () => {
    const proxy = await startCutProxy(lab.influx.url, 100_000);
    onTestFinished(() => proxy.stop());
    const gw2 = await lab.startGateway({ influxUrl: proxy.url, config: { influx: { db: lab.gw.db } } });
    const token = await projectWithToken(gw2, 'cut-early', 0);
    const res = await readings(gw2, 'cut-early', token);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /^InfluxDB broke off its answer: the answer broke off/,
    );
    expect(proxy.cuts()).toBeGreaterThan(0);
  });
});

describe('item 5: broker safety paths', () => {
  it('strips retain from a telemetry publish: a later subscriber gets the retained status, not the reading', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, OX.id);
    onTestFinished(() => void device.end(true));
    await device.publishAsync(`${OX_TOPIC}/telemetry`, reading(96), { qos: 1, retain: true });
    const staff = await connectDevice(lab.gw.mqttUrl, 'staff-1', { clientId: 'staff-1:retain' });
    onTestFinished(() => void staff.end(true));
    const telemetry = await collect(staff, `${OX_TOPIC}/telemetry`);
    // Subscribed after the telemetry filter on the same connection: its retained "online" is the
    // marker that a retained telemetry message would have arrived by now.
    const status = await collect(staff, `${OX_TOPIC}/status`);
    await eventually(
      async () => status.messages.filter((m) => m.topic.endsWith('/status')),
      (m) => m.length > 0,
    );
    const online = status.messages.find((m) => m.topic.endsWith('/status'));
    expect(online?.payload.toString()).toBe('online');
    expect(online?.retain).toBe(true);
    expect(telemetry.messages.filter((m) => m.topic.endsWith('/telemetry'))).toEqual([]);
  });

  it('rejects a bad status payload with feedback and does not retain it', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, OX.id);
    onTestFinished(() => void device.end(true));
    const feedback = await collect(device, `${OX_TOPIC}/rejected`);
    await device.publishAsync(`${OX_TOPIC}/status`, 'sleeping', { qos: 1, retain: true });
    const [fb] = await feedback.next(1);
    expect(JSON.parse(fb?.payload.toString() ?? '{}')).toMatchObject({
      topic: `${OX_TOPIC}/status`,
      reason: 'schema',
      errors: [{ message: 'status payload must be "online" or "offline"' }],
    });
    const staff = await connectDevice(lab.gw.mqttUrl, 'staff-1', { clientId: 'staff-1:status' });
    onTestFinished(() => void staff.end(true));
    const status = await collect(staff, `${OX_TOPIC}/status`);
    const [retained] = await status.next(1);
    expect(retained?.payload.toString()).toBe('online');
  });

  it('sends no PUBACK when the spool append fails, and stores nothing of that message', async () => {
    const faults = createDiskFaults();
    const gw = await lab.startGateway({ devices: [OX], openSpoolFile: faults.openFile });
    const device = await connectDevice(gw.mqttUrl, OX.id);
    onTestFinished(() => void device.end(true));
    faults.shortWriteThenFull(5, 1);
    const closed = new Promise<string>((r) => device.once('close', () => r('closed')));
    const acked = device.publishAsync(`${OX_TOPIC}/telemetry`, reading(91), { qos: 1 }).then(
      () => 'acknowledged',
      () => 'closed',
    );
    // The gateway answers a failed append by closing the connection, never with a PUBACK.
    expect(await Promise.race([acked, closed])).toBe('closed');
    expect(faults.injected.writes).toBe(1);
    // A marker reading after the failure: once it is stored, the failed one would have been too.
    const again = await connectDevice(gw.mqttUrl, OX.id);
    onTestFinished(() => void again.end(true));
    await again.publishAsync(`${OX_TOPIC}/telemetry`, reading(92), { qos: 1 });
    const rows = await eventually(
      () => lab.influx.query<{ spo2: number }>(gw.db, 'SELECT spo2 FROM pulse_oximeter'),
      (r) => r.length > 0,
    );
    expect(rows.map((r) => r.spo2)).toEqual([92]);
    expect(gw.logLines().some((l) => l.msg === 'ingestion failed; message not acknowledged')).toBe(true);
  });
});
