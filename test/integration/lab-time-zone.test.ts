// Dates mean what a Danish lab means (issue 18): with `timezone: Europe/Copenhagen`, a project's
// period and a consent start and end at the lab's midnights, `every=1d` windows are the lab's days
// (23 hours on 2026-03-29, 25 on 2026-10-25), no aggregate row is labelled before the data it
// covers, and a consent recorded by the command line gets the lab's date. Readings are written
// straight to the real influxd and read back through the gateway's research API.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { dayOf } from '../../src/config/time-zone.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { ndjson, untilTokens } from '../helpers/research.js';

const HOUR = 3_600_000;
const tokens: Record<string, string> = {};

const line = (code: string, iso: string, hr: number) =>
  `bed_sensor,device_id=bed-${code},device_type=bed-sensor,schema_version=1,site=s,subject=${code} heartRate=${hr}i,occupied=true ${Date.parse(iso) * 1_000_000}`;

/** One reading an hour for p-days over [from, to). */
function hourly(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += HOUR)
    out.push(line('p-days', new Date(t).toISOString(), 60));
  return out;
}

const lab = useLab({ devices: [], config: { timezone: 'Europe/Copenhagen' } });
beforeAll(async () => {
  const points = [
    // Project "edges", 2026-03-20 – 2026-03-28 (CET, UTC+1).
    line('p-edge', '2026-03-19T22:30:00Z', 1), // 23:30 local on 19 March: before the period
    line('p-edge', '2026-03-19T23:30:00Z', 2), // 00:30 local on 20 March: its first day
    line('p-edge', '2026-03-28T22:30:00Z', 3), // 23:30 local on 28 March: its last day
    line('p-edge', '2026-03-28T23:30:00Z', 4), // 00:30 local on 29 March: the day after it ends
    // p-late consented on 2026-03-25.
    line('p-late', '2026-03-24T22:45:00Z', 5), // 23:45 local on 24 March: before the consent
    line('p-late', '2026-03-24T23:15:00Z', 6), // 00:15 local on 25 March: the consent's first day
    // Project "days": hourly readings across both daylight-saving changes.
    ...hourly('2026-03-26T23:00:00Z', '2026-03-31T22:00:00Z'),
    ...hourly('2026-10-23T22:00:00Z', '2026-10-27T23:00:00Z'),
  ];
  const res = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, {
    method: 'POST',
    body: points.join('\n'),
  });
  expect(res.status).toBe(204);
  await lab.gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, {
      id: 'edges',
      from: '2026-03-20',
      to: '2026-03-28',
      types: ['bed-sensor'],
    });
    d = addProject(d, { id: 'days', from: '2026-03-27', to: '2026-10-31', types: ['bed-sensor'] });
    d = setConsent(d, 'edges', 'p-edge', { on: '2026-03-01' });
    d = setConsent(d, 'edges', 'p-late', { on: '2026-03-25' });
    d = setConsent(d, 'days', 'p-days', { on: '2026-03-27' });
    for (const project of ['edges', 'days']) {
      const r = issueToken(d, { project, researcher: project, expires: new Date(Date.now() + 86_400_000) });
      d = r.data;
      tokens[project] = r.token;
    }
    return d;
  });
  await untilTokens(lab.gw, 2);
});

async function rows(project: string, query: string) {
  const res = await fetch(
    `http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/projects/${project}/readings?type=bed-sensor&fields=heartRate&format=ndjson&precision=ms${query}`,
    { headers: { authorization: `Bearer ${tokens[project]}` } },
  );
  expect(res.status, await res.clone().text()).toBe(200);
  return ndjson(res);
}

describe('project periods and consents in the lab time zone', () => {
  it('keeps 00:30 local on the first day and 23:30 on the last, leaves out 00:30 on the day after', async () => {
    const out = await rows('edges', '');
    expect(
      out.filter((r) => r.heartRate !== 5 && r.heartRate !== 6).map((r) => [r.time, r.heartRate]),
    ).toEqual([
      ['2026-03-19T23:30:00.000Z', 2],
      ['2026-03-28T22:30:00.000Z', 3],
    ]);
  });

  it('starts a consent at local midnight: 00:15 local on its date comes out, 23:45 the evening before does not', async () => {
    const out = await rows('edges', '');
    expect(
      out.filter((r) => r.heartRate === 5 || r.heartRate === 6).map((r) => [r.time, r.heartRate]),
    ).toEqual([['2026-03-24T23:15:00.000Z', 6]]);
  });
});

describe('aggregation windows', () => {
  it('labels every=1d rows at local midnight and counts 23 and 25 hours on the changeover days', async () => {
    const spring = await rows('days', '&every=1d&fn=count&to=2026-03-31T22:00:00Z');
    expect(spring.map((r) => [r.time, r.heartRate])).toEqual([
      ['2026-03-26T23:00:00.000Z', 24],
      ['2026-03-27T23:00:00.000Z', 24],
      ['2026-03-28T23:00:00.000Z', 23],
      ['2026-03-29T22:00:00.000Z', 24],
      ['2026-03-30T22:00:00.000Z', 24],
    ]);
    const autumn = await rows('days', '&every=1d&fn=count&from=2026-10-23T22:00:00Z');
    expect(autumn.map((r) => [r.time, r.heartRate])).toEqual([
      ['2026-10-23T22:00:00.000Z', 24],
      ['2026-10-24T22:00:00.000Z', 25],
      ['2026-10-25T23:00:00.000Z', 24],
      ['2026-10-26T23:00:00.000Z', 24],
    ]);
  });

  it('never labels a window before the consent start (every=5h, every=9999d)', async () => {
    const consentStart = '2026-03-26T23:00:00.000Z';
    const fiveHours = await rows('days', '&every=5h&fn=count&to=2026-03-31T22:00:00Z');
    expect(fiveHours[0]?.time).toBe(consentStart);
    expect(fiveHours.every((r) => (r.time as string) >= consentStart)).toBe(true);
    expect(fiveHours.reduce((n, r) => n + (r.heartRate as number), 0)).toBe(119);
    const all = await rows('days', '&every=9999d&fn=count');
    expect(all.map((r) => [r.time, r.heartRate])).toEqual([[consentStart, 119 + 97]]);
  });

  it('labels a window that starts inside an asked-for range at the start of that range', async () => {
    const out = await rows('days', '&every=1d&fn=count&from=2026-03-28T10:00:00Z&to=2026-03-29T22:00:00Z');
    expect(out.map((r) => [r.time, r.heartRate])).toEqual([
      ['2026-03-28T10:00:00.000Z', 13],
      ['2026-03-28T23:00:00.000Z', 23],
    ]);
  });
});

describe('livinglab projects consent', () => {
  it("records the lab's date, not the UTC date, when no --date is given", async () => {
    // A zone in which the date now differs from the UTC date: where it is just after midnight
    // (UTC+1..+14), or, in the first hours of a UTC day, UTC-12.
    const hour = new Date().getUTCHours();
    const zone = hour >= 10 ? `Etc/GMT-${24 - hour}` : 'Etc/GMT+12';
    const dir = await mkdtemp(join(tmpdir(), 'll-tz-cli-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const reg = join(dir, 'lab.yaml');
    await writeRegistryFile(
      reg,
      addProject(EMPTY_REGISTRY, { id: 'p', from: '2026-01-01', to: '2027-12-31', types: ['bed-sensor'] }),
    );
    const before = dayOf(Date.now(), zone);
    const r = await runCli(['projects', 'consent', 'p', '--subject', 'p-017', '--registry', reg], {
      env: { LIVINGLAB_TIMEZONE: zone },
    });
    const after = dayOf(Date.now(), zone);
    expect(r.code, r.stderr).toBe(0);
    const consent = (await readRegistryFile(reg)).projects[0]?.consents[0];
    expect([before, after]).toContain(consent?.from);
    expect(consent?.from).not.toBe(new Date().toISOString().slice(0, 10));
  });
});
