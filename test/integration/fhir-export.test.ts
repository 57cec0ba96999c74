// format=fhir through the real gateway and a real influxd: readings published over MQTT come out of
// the export route (and `livinglab export --format fhir`) as FHIR R4 NDJSON that validates, with
// pseudonyms only; a type without a coded field is refused with the reason.
import { beforeAll, describe, expect, it } from 'vitest';
import { devicePseudonym, pseudonym } from '../../src/query/pseudonym.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import type { RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { fhirErrors, fhirValidators } from '../helpers/fhir-schema.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice } from '../helpers/mqtt.js';
import { dayFromToday, openProject, untilTokens } from '../helpers/research.js';

const lab = useLab({
  devices: [
    { id: 'ox-0001', type: 'pulse-oximeter', site: 'odense-home-7', subject: 'p-0042' },
    { id: 'ox-0002', type: 'pulse-oximeter', site: 'odense-home-7', subject: 'p-0042' },
    { id: 'door-0001', type: 'door-sensor', site: 'odense-home-7', subject: 'p-0042' },
  ],
});
let token = '';
const T0 = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
const at = (minutes: number, ms = 0) => new Date(T0 + minutes * 60_000 + ms).toISOString();

beforeAll(async () => {
  fhirValidators();
  for (const [id, offset] of [
    ['ox-0001', 0],
    ['ox-0002', 30],
  ] as const) {
    const c = await connectDevice(lab.gw.mqttUrl, id);
    const readings = [0, 1, 2].map((m) => ({
      ts: at(m, offset + 123),
      spo2: 95 + m,
      pulse: 70 + m,
      perfusionIndex: 2.5,
      probe: 'finger',
      battery: 80,
    }));
    await c.publishAsync(`lab/odense-home-7/pulse-oximeter/${id}/telemetry`, JSON.stringify({ readings }), {
      qos: 1,
    });
    await c.endAsync();
  }
  const door = await connectDevice(lab.gw.mqttUrl, 'door-0001');
  await door.publishAsync(
    'lab/odense-home-7/door-sensor/door-0001/event',
    JSON.stringify({ ts: at(0), open: true, door: 'front' }),
    { qos: 1 },
  );
  await door.endAsync();
  await lab.gw.app.drain.idle(10_000);
  await lab.gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, openProject('vitals', ['pulse-oximeter', 'door-sensor']));
    d = setConsent(d, 'vitals', 'p-0042', { on: dayFromToday(-5) });
    const issued = issueToken(d, {
      project: 'vitals',
      researcher: 'r',
      expires: new Date(Date.now() + 86_400_000),
    });
    token = issued.token;
    return issued.data;
  });
  await untilTokens(lab.gw, 1);
}, 120_000);

const get = (query: string) =>
  fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/projects/vitals/readings?${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });

type Resource = Record<string, unknown> & { resourceType: string };
const parse = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Resource);

describe('format=fhir through the gateway', () => {
  it('exports pulse-oximeter readings as FHIR R4 NDJSON that validates, one Device per device first', async () => {
    const res = await get('type=pulse-oximeter&format=fhir');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/fhir+ndjson');
    const text = await res.text();
    const resources = parse(text);
    for (const r of resources) expect(fhirErrors(r), JSON.stringify(r)).toEqual([]);
    const secret = lab.gw.app.registry.current().data.projects.find((p) => p.id === 'vitals')
      ?.secret as string;
    const devices = resources.filter((r) => r.resourceType === 'Device');
    expect(devices.map((d) => d.id).sort()).toEqual(
      [devicePseudonym(secret, 'ox-0001'), devicePseudonym(secret, 'ox-0002')].sort(),
    );
    expect(devices[0]).toMatchObject({ manufacturer: 'acme' });
    // Six readings, two coded fields each (spo2, pulse); perfusion index and battery have no code.
    const observations = resources.filter((r) => r.resourceType === 'Observation');
    expect(observations).toHaveLength(12);
    const seen = new Set<string>();
    for (const r of resources) {
      if (r.resourceType === 'Device') seen.add(`Device/${r.id as string}`);
      else {
        expect(seen, 'Device before its first Observation').toContain(
          (r.device as { reference: string }).reference,
        );
        expect(r.subject).toEqual({ reference: `Patient/${pseudonym(secret, 'p-0042')}` });
      }
    }
    // The reading's own time (to the millisecond it was sent with; more digits once rows carry them).
    const spo2 = observations.filter(
      (o) =>
        String(o.effectiveDateTime).startsWith(at(0, 123).slice(0, 23)) &&
        (o.code as { coding: { code: string }[] }).coding[0]?.code === '59408-5',
    );
    expect(spo2.map((o) => o.valueQuantity)).toEqual([
      { value: 95, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
    ]);
    for (const word of ['p-0042', 'ox-0001', 'ox-0002', 'odense-home-7']) expect(text).not.toContain(word);
  });

  it('exports hourly means as Observations over their window, and refuses fn=count', async () => {
    const res = await get('type=pulse-oximeter&format=fhir&every=1h&fn=mean');
    expect(res.status).toBe(200);
    const resources = parse(await res.text());
    // Aggregates are per device too (each device's own series), so its Device comes first.
    const observations = resources.filter((r) => r.resourceType === 'Observation');
    expect(observations.length).toBeGreaterThan(0);
    expect(resources.filter((r) => r.resourceType === 'Device').length).toBeGreaterThan(0);
    for (const o of observations) {
      expect(fhirErrors(o), JSON.stringify(o)).toEqual([]);
      expect((o.device as { reference: string }).reference).toMatch(/^Device\/d-/);
      const period = o.effectivePeriod as { start: string; end: string };
      expect(Date.parse(period.end) - Date.parse(period.start)).toBe(3_600_000);
      expect(o.method).toEqual({ text: 'mean of the readings in each 1h window' });
    }
    const count = await get('type=pulse-oximeter&format=fhir&every=1h&fn=count');
    expect(count.status).toBe(400);
    expect(((await count.json()) as { error: string }).error).toMatch(/cannot carry fn=count/);
  });

  it('refuses format=fhir for a type without a coded field, with the reason', async () => {
    const res = await get('type=door-sensor&format=fhir');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error:
        'format=fhir needs a field with a LOINC code, and no field of door-sensor has one (see /api/v1/dictionary, column fhir)',
    });
  });

  it('lists uncoded fields as left out of FHIR in the dictionary', async () => {
    const body = (await (
      await fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/dictionary`)
    ).json()) as {
      fields: { field: string; measurement: string; fhir: boolean; loinc: string[] }[];
    };
    expect(body.fields.find((f) => f.measurement === 'door_event' && f.field === 'open')).toMatchObject({
      fhir: false,
      loinc: [],
    });
    expect(body.fields.find((f) => f.measurement === 'pulse_oximeter' && f.field === 'spo2')).toMatchObject({
      fhir: true,
      loinc: ['59408-5', '2708-6'],
    });
  });

  it('livinglab export --format fhir writes the same resources', { timeout: 60_000 }, async () => {
    const out = await runCli([
      'export',
      '--project',
      'vitals',
      '--type',
      'pulse-oximeter',
      '--format',
      'fhir',
      '--url',
      `http://127.0.0.1:${lab.gw.app.httpPort}`,
      '--token',
      token,
    ]);
    expect(out.code, out.stderr).toBe(0);
    const resources = parse(out.stdout);
    expect(resources.filter((r) => r.resourceType === 'Observation')).toHaveLength(12);
    for (const r of resources) expect(fhirErrors(r)).toEqual([]);
  });
});
