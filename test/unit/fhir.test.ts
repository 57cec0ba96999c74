// FHIR export (src/query/fhir.ts) on every bundled device type's examples: each resource validates
// against the FHIR R4 JSON schema, and the DK Core Basic Observation rules hold (a LOINC coding, a
// UCUM valueQuantity, a subject reference to the pseudonym, no participant code, device id or site
// name anywhere). Types without a coded field are refused with a reason.
import { beforeAll, describe, expect, it } from 'vitest';
import { bundledSchemasDir } from '../../src/config/load.js';
import {
  codedFields,
  encodeFhir,
  type FhirContext,
  type FhirType,
  fhirRefusal,
  IDENTIFIER_SYSTEM,
} from '../../src/query/fhir.js';
import { devicePseudonym, pseudonym } from '../../src/query/pseudonym.js';
import type { ReadingRow } from '../../src/query/readings.js';
import { CODE_SYSTEMS, UCUM_UNITS } from '../../src/schemas/codes.js';
import { loadSchemas } from '../../src/schemas/load.js';
import type { DeviceSchema } from '../../src/schemas/types.js';
import { fhirErrors, fhirValidators } from '../helpers/fhir-schema.js';

const SECRET = 'ab'.repeat(32);
const PARTICIPANT = 'p-0042';
const DEVICE_ID = 'dev-7731';
const SITE = 'odense-home-7';
const SUBJECT = pseudonym(SECRET, PARTICIPANT);
const DEVICE = devicePseudonym(SECRET, DEVICE_ID);

const schemas = loadSchemas(bundledSchemasDir()).all();
const coded = schemas.filter((s) => codedFields(s.timeseries.fields).length > 0);
const uncoded = schemas.filter((s) => codedFields(s.timeseries.fields).length === 0);

/** An example message as an export row (SHARED CONTRACTS columns), time with nanoseconds. */
function rowOf(schema: DeviceSchema, example: unknown, provenance = 'real'): ReadingRow {
  const ex = example as Record<string, unknown>;
  const ms = Date.parse(ex[schema.timeseries.time] as string);
  const row: ReadingRow = {
    time: new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1456789Z'),
    subject: SUBJECT,
    device: DEVICE,
    device_type: schema.type,
    schema_version: schema.version,
    provenance,
  };
  for (const tag of schema.timeseries.tags) row[tag] = (ex[tag] as string | undefined) ?? null;
  for (const f of schema.timeseries.fields)
    row[f.name] = (ex[f.name] as string | number | boolean | undefined) ?? null;
  return row;
}

function contextOf(schema: DeviceSchema, aggregate?: FhirContext['aggregate']): FhirContext {
  const type: FhirType = {
    type: schema.type,
    title: schema.title,
    fields: codedFields(schema.timeseries.fields),
  };
  return {
    types: new Map([[schema.type, type]]),
    defaultType: schema.type,
    devices: new Map([[DEVICE, { vendor: 'Acme Medical', model: 'AM-200' }]]),
    ...(aggregate ? { aggregate } : {}),
  };
}

interface Coding {
  system: string;
  code: string;
}
/** What the tests read of an emitted resource (the FHIR schema checks the rest). */
interface Resource {
  resourceType: string;
  id: string;
  meta?: { security: Coding[] };
  identifier: { system: string; value: string }[];
  code: { coding: Coding[] };
  category: { coding: Coding[] }[];
  valueQuantity: { value: unknown; code: string; system: string };
  subject: unknown;
  device?: unknown;
  effectiveDateTime?: string;
  effectivePeriod?: unknown;
}

async function encode(
  rows: ReadingRow[],
  ctx: FhirContext,
): Promise<{ text: string; resources: Resource[] }> {
  let text = '';
  async function* source() {
    yield rows;
  }
  for await (const chunk of encodeFhir(source(), ctx, () => {})) text += chunk;
  return {
    text,
    resources: text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l)),
  };
}

beforeAll(() => {
  fhirValidators();
}, 60_000);

describe('FHIR export of every device type', () => {
  it('covers all eleven types: the coded ones export, the rest are refused', () => {
    expect(schemas).toHaveLength(11);
    expect(coded.map((s) => s.type).sort()).toEqual([
      'bed-sensor',
      'blood-pressure',
      'pulse-oximeter',
      'thermometer',
      'weight-scale',
    ]);
  });

  it.each(coded.map((s) => [s.key, s] as const))(
    '%s: its examples become resources that validate against FHIR R4 and follow DK Core',
    async (_key, schema) => {
      const { text, resources } = await encode(
        schema.examples.map((ex) => rowOf(schema, ex)),
        contextOf(schema),
      );
      const observations = resources.filter((r) => r.resourceType === 'Observation');
      expect(observations.length).toBeGreaterThan(0);
      for (const r of resources) expect(fhirErrors({ ...r }), JSON.stringify(r)).toEqual([]);
      // Device first, once, and referenced by every Observation.
      expect(resources[0]).toMatchObject({
        resourceType: 'Device',
        id: DEVICE,
        manufacturer: 'Acme Medical',
        modelNumber: 'AM-200',
      });
      expect(resources.filter((r) => r.resourceType === 'Device')).toHaveLength(1);
      for (const o of observations) {
        const systems = o.code.coding.map((c) => c.system);
        expect(systems[0], 'a LOINC coding, first').toBe(CODE_SYSTEMS.loinc);
        expect(systems, 'the MDC code beside it').toContain(CODE_SYSTEMS.mdc);
        expect(o.valueQuantity.system).toBe('http://unitsofmeasure.org');
        expect(Object.keys(UCUM_UNITS)).toContain(o.valueQuantity.code);
        expect(typeof o.valueQuantity.value).toBe('number');
        expect(o.subject).toEqual({ reference: `Patient/${SUBJECT}` });
        expect(o.device).toEqual({ reference: `Device/${DEVICE}` });
        expect(o.effectiveDateTime).toMatch(/\.\d{3}456789Z$/);
        expect(o.identifier[0]?.system).toBe(IDENTIFIER_SYSTEM);
        expect(o.meta).toBeUndefined();
      }
      for (const secret of [PARTICIPANT, DEVICE_ID, SITE]) expect(text).not.toContain(secret);
    },
    60_000,
  );

  it.each(uncoded.map((s) => [s.key, s] as const))(
    '%s: has no coded field, so format=fhir is refused with the reason',
    (_key, schema) => {
      const names = schema.timeseries.fields.map((f) => f.name);
      expect(fhirRefusal(schema.type, schema.timeseries.fields, names)).toMatch(
        new RegExp(`no field of ${schema.type} has one`),
      );
    },
  );
});

describe('FHIR Observation details', () => {
  const ox = schemas.find((s) => s.type === 'pulse-oximeter') as DeviceSchema;
  const example = ox.examples[0];

  it('codes SpO2 with LOINC 59408-5 and 2708-6, NPU03011 and MDC 150456, in %', async () => {
    const { resources } = await encode([rowOf(ox, example)], contextOf(ox));
    const spo2 = resources.find((r) => r.code?.coding[0]?.code === '59408-5');
    expect(spo2?.code.coding).toEqual([
      { system: 'http://loinc.org', code: '59408-5' },
      { system: 'http://loinc.org', code: '2708-6' },
      { system: 'urn:oid:1.2.208.176.2.1', code: 'NPU03011' },
      { system: 'urn:iso:std:iso:11073:10101', code: '150456' },
    ]);
    expect(spo2?.valueQuantity).toEqual({
      value: 97,
      unit: '%',
      system: 'http://unitsofmeasure.org',
      code: '%',
    });
    expect(spo2?.category[0]?.coding[0]?.code).toBe('vital-signs');
  });

  it('labels simulated readings and their device HTEST', async () => {
    const { resources } = await encode([rowOf(ox, example, 'simulated')], contextOf(ox));
    const label = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HTEST' };
    for (const r of resources) {
      expect(r.meta?.security).toContainEqual(expect.objectContaining(label));
      expect(fhirErrors({ ...r })).toEqual([]);
    }
  });

  it('gives one reading the same identifiers in every export, and each field its own', async () => {
    const a = (await encode([rowOf(ox, example)], contextOf(ox))).resources.slice(1);
    const b = (await encode([rowOf(ox, example)], contextOf(ox))).resources.slice(1);
    expect(a.map((o) => o.identifier)).toEqual(b.map((o) => o.identifier));
    expect(a.map((o) => o.id)).toEqual(b.map((o) => o.id));
    expect(new Set(a.map((o) => o.identifier[0]?.value)).size).toBe(a.length);
    expect(a[0]?.identifier[0]?.value).toBe(
      `${DEVICE}/${SUBJECT}/pulse-oximeter/spo2/2026-11-22T10:00:00.123456789Z`,
    );
  });

  it('leaves out fields without a code and values that are missing', async () => {
    const row = { ...rowOf(ox, example), pulse: null };
    const { resources } = await encode([row], contextOf(ox));
    const codes = resources.slice(1).map((o) => o.code.coding[0]?.code);
    // perfusionIndex and battery have no code, pulse has no value.
    expect(codes).toEqual(['59408-5']);
  });

  it('gives an aggregate its window as effectivePeriod', async () => {
    // Aggregate rows carry no device on this branch: no device reference then.
    const row: ReadingRow = { ...rowOf(ox, example), time: '2026-11-22T10:00:00.000000000Z', device: null };
    const { resources } = await encode([row], contextOf(ox, { fn: 'mean', every: '1h' }));
    expect(resources[0]?.resourceType).toBe('Observation');
    expect(resources[0]?.effectivePeriod).toEqual({
      start: '2026-11-22T10:00:00.000000000Z',
      end: '2026-11-22T11:00:00.000000000Z',
    });
    expect(resources[0]?.effectiveDateTime).toBeUndefined();
    for (const r of resources) expect(fhirErrors({ ...r })).toEqual([]);
  });

  it('refuses fn=count and names the coded fields when only uncoded ones were asked', () => {
    const names = ox.timeseries.fields.map((f) => f.name);
    expect(fhirRefusal(ox.type, ox.timeseries.fields, names, 'count')).toMatch(/fn=count/);
    expect(fhirRefusal(ox.type, ox.timeseries.fields, ['battery'])).toMatch(/only spo2, pulse have one/);
  });
});
