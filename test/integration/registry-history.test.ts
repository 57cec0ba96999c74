// Who had a device when, and one consent line per subject, end to end against a real gateway and
// influxd (issue 13 #4 and #6): a moved device's buffered readings stay with the resident they were
// measured at, and a hand-edited consent cannot bring a withdrawn subject back.
import { writeFile } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import { pseudonym } from '../../src/query/pseudonym.js';
import { assignDevice } from '../../src/registry/edit.js';
import { serialiseRegistry } from '../../src/registry/file.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import type { Project, RegistryData } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice, eventually, settled } from '../helpers/mqtt.js';
import { ndjson, openProject, untilTokens } from '../helpers/research.js';

let token = '';
const DAY = 86_400_000;
// Dates from one "now" taken when the file loads: a run across UTC midnight sees one today.
const TODAY = Date.now();
const day = (offset: number) => new Date(TODAY + offset * DAY).toISOString().slice(0, 10);
// The move happened an hour ago; the device flushes readings from before and after it.
const MOVE = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
const BEFORE = [-3 * 3_600_000, -3_600_000, -60_000, -1].map((d) => MOVE + d);
const AFTER = [0, 60_000, 30 * 60_000].map((d) => MOVE + d);
const iso = (ms: number) => new Date(ms).toISOString();

const get = (path: string) =>
  fetch(`http://127.0.0.1:${lab.gw.app.httpPort}${path}`, { headers: { authorization: `Bearer ${token}` } });
const project = (): Project => lab.gw.app.registry.current().data.projects[0] as Project;

async function publish(client: MqttClient, id: string, readings: { ts: string; spo2: number }[]) {
  const batch = readings.map((r) => ({ ...r, pulse: 70 }));
  await client.publishAsync(`lab/home/pulse-oximeter/${id}/telemetry`, JSON.stringify({ readings: batch }), {
    qos: 1,
  });
}

const lab = useLab({
  devices: [
    // ox-5 at p-005's home (no consent); ox-6 in storage (no one); ox-7 with p-007, who withdraws.
    { id: 'ox-5', type: 'pulse-oximeter', site: 'home', subject: 'p-005' },
    { id: 'ox-6', type: 'pulse-oximeter', site: 'home' },
    { id: 'ox-7', type: 'pulse-oximeter', site: 'home', subject: 'p-007' },
  ],
});
beforeAll(async () => {
  await lab.gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, openProject('spo2', ['pulse-oximeter'], ['spo2']));
    d = setConsent(d, 'spo2', 'p-006', { on: day(-10) });
    d = setConsent(d, 'spo2', 'p-007', { on: day(-10) });
    d = setConsent(d, 'spo2', 'p-007', { withdraw: true, on: day(0) });
    // ox-5 moves from p-005 to p-006; ox-6 comes out of storage to p-006 at the same time.
    d = assignDevice(d, 'ox-5', 'p-006', iso(MOVE));
    d = assignDevice(d, 'ox-6', 'p-006', iso(MOVE));
    const issued = issueToken(d, {
      project: 'spo2',
      researcher: 'Dr. Test',
      expires: new Date(Date.now() + DAY),
    });
    token = issued.token;
    return issued.data;
  });
  await untilTokens(lab.gw, 1);
  for (const id of ['ox-5', 'ox-6']) {
    const c = await connectDevice(lab.gw.mqttUrl, id);
    // Buffered at the previous home (spo2 90), then measured at p-006's (spo2 98), flushed at once.
    await publish(c, id, [
      ...BEFORE.map((t) => ({ ts: iso(t), spo2: 90 })),
      ...AFTER.map((t) => ({ ts: iso(t), spo2: 98 })),
    ]);
    await c.endAsync();
  }
  const c7 = await connectDevice(lab.gw.mqttUrl, 'ox-7');
  await publish(c7, 'ox-7', [{ ts: iso(MOVE), spo2: 95 }]);
  await c7.endAsync();
  await lab.gw.app.drain.idle(10_000);
});

describe('a moved device (issue 13 #4)', () => {
  it('tags each reading with the subject the device had at its own ts, not at its arrival', async () => {
    const rows = await eventually(
      () =>
        lab.influx.query<{ time: number; subject?: string; device_id: string }>(
          lab.gw.db,
          `SELECT spo2, subject, device_id FROM pulse_oximeter WHERE device_id = 'ox-5' OR device_id = 'ox-6'`,
        ),
      (r) => r.length === 2 * (BEFORE.length + AFTER.length),
    );
    const subjectOf = (id: string, ms: number) =>
      rows.find((r) => r.device_id === id && r.time === ms * 1_000_000)?.subject ?? null;
    for (const t of BEFORE) {
      expect(subjectOf('ox-5', t)).toBe('p-005');
      expect(subjectOf('ox-6', t)).toBeNull();
    }
    for (const t of AFTER) {
      expect(subjectOf('ox-5', t)).toBe('p-006');
      expect(subjectOf('ox-6', t)).toBe('p-006');
    }
  });
  it("exports only the readings after the move, under p-006's pseudonym", async () => {
    const res = await get('/api/v1/projects/spo2/readings?type=pulse-oximeter&format=ndjson');
    expect(res.status).toBe(200);
    const rows = await ndjson(res);
    const p006 = pseudonym(project().secret, 'p-006');
    // Exports write nine fraction digits.
    const nine = (t: number) => iso(t).replace('Z', '000000Z');
    const expected = AFTER.flatMap((t) => [nine(t), nine(t)]).sort();
    expect(rows.map((r) => r.time).sort()).toEqual(expected);
    expect(rows.every((r) => r.subject === p006 && r.spo2 === 98)).toBe(true);
  });
  it("keeps the previous home's readings out of p-006's aggregates", async () => {
    const res = await get(
      '/api/v1/projects/spo2/readings?type=pulse-oximeter&format=ndjson&every=1h&fn=mean',
    );
    expect(res.status).toBe(200);
    const rows = await ndjson(res);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(r.spo2).toBe(98);
  });
});

describe('a duplicated consent (issue 13 #6)', () => {
  it('refuses a second consent line beside a withdrawn one on reload, keeps the previous registry and logs it', async () => {
    // An edit writes lab.yaml and its secrets file, and each change is reloaded: let the last one land.
    await settled(() => lab.gw.app.registry.reloads, 1000);
    const before = lab.gw.app.registry.current();
    const text = serialiseRegistry(before.data);
    // A hand edit: the withdrawn consent stays, and an active line for the same subject is added.
    const consent = / {6}- subject: p-007\n {8}from: \S+\n {8}withdrawn: \S+\n/.exec(text);
    expect(consent).not.toBeNull();
    const at = consent?.index ?? 0;
    const withdrawnLine = text.slice(0, at).split('\n').length;
    const edited = `${text.slice(0, at + (consent?.[0].length ?? 0))}      - subject: p-007\n        from: ${day(-10)}\n${text.slice(at + (consent?.[0].length ?? 0))}`;
    expect(edited).not.toBe(text);
    const seen = lab.gw.logLines().length;
    await writeFile(lab.gw.registryFile, edited, { mode: 0o600 });
    const outcome = await eventually(
      async () =>
        lab.gw
          .logLines()
          .slice(seen)
          .find((l) => typeof l.msg === 'string' && l.msg.startsWith('registry reload')),
      (l) => l !== undefined,
    );
    expect(outcome).toMatchObject({
      level: 50,
      msg: 'registry reload failed; keeping the previous registry',
      err: `${lab.gw.registryFile}:${withdrawnLine + 3}: project spo2 has a second consent line for subject p-007 (the first is at ${lab.gw.registryFile}:${withdrawnLine}); keep one line per subject and project: a renewed consent replaces the withdrawn line`,
    });
    expect(lab.gw.app.registry.current()).toBe(before);
    const rows = await ndjson(await get('/api/v1/projects/spo2/readings?type=pulse-oximeter&format=ndjson'));
    const p007 = pseudonym(project().secret, 'p-007');
    expect(rows.length).toBe(2 * AFTER.length);
    expect(rows.some((r) => r.subject === p007)).toBe(false);
  });
});
