import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundledSchemasDir } from '../../src/config/load.js';
import { loadSchemas } from '../../src/schemas/load.js';

const REQUIRED_TYPES = [
  'pulse-oximeter',
  'blood-pressure',
  'weight-scale',
  'thermometer',
  'bed-sensor',
  'fall-detector',
  'motion-sensor',
  'door-sensor',
  'room-climate',
  'medication-dispenser',
  'emergency-button',
];

describe('bundled device schemas', () => {
  const set = loadSchemas(bundledSchemasDir());

  it('cover every device type the lab needs', () => {
    expect(new Set(set.all().map((s) => s.type))).toEqual(new Set(REQUIRED_TYPES));
  });

  it.each(set.all().map((s) => [s.key, s] as const))('%s: every example validates', (_key, schema) => {
    expect(schema.examples.length).toBeGreaterThan(0);
    for (const ex of schema.examples)
      expect(schema.validate(ex), JSON.stringify(schema.validate.errors)).toBe(true);
  });

  it.each(set.all().map((s) => [s.key, s] as const))(
    '%s: documents units, descriptions and its vocabulary',
    (_key, schema) => {
      expect(schema.description).toMatch(/Open mHealth|IEEE 11073|UCUM|Zigbee|EN 50134|FHIR/);
      for (const f of schema.timeseries.fields) expect(f.description, `${schema.key} ${f.name}`).toBeTruthy();
      for (const f of schema.timeseries.fields.filter((x) => x.kind === 'float' || x.kind === 'integer')) {
        if (!['slot'].includes(f.name)) expect(f.unit, `${schema.key} ${f.name} has a unit`).toBeTruthy();
      }
    },
  );

  it('carries the clinical codes of its fields (x-loinc, x-mdc, x-npu)', () => {
    const ox = set.get('pulse-oximeter', 1);
    expect(ox?.timeseries.fields.find((f) => f.name === 'spo2')?.codes).toEqual({
      loinc: ['59408-5', '2708-6'],
      mdc: '150456',
      npu: 'NPU03011',
    });
    expect(ox?.timeseries.fields.find((f) => f.name === 'battery')?.codes).toBeUndefined();
  });

  it('maps JSON numbers to fixed InfluxDB field types', () => {
    const ox = set.get('pulse-oximeter', 1);
    expect(ox?.timeseries.fields.map((f) => [f.name, f.kind, f.unit])).toEqual([
      ['spo2', 'integer', '%'],
      ['pulse', 'integer', '/min'],
      ['perfusionIndex', 'float', '%'],
      ['battery', 'integer', '%'],
    ]);
  });
});

function schemaDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'll-schemas-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const good = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['ts', 'value'],
  'x-timeseries': { measurement: 'thing', time: 'ts', tags: [], fields: ['value'] },
  properties: {
    ts: { type: 'string', format: 'date-time' },
    value: { type: 'number', 'x-unit': 'kg', description: 'v' },
  },
  examples: [{ ts: '2026-11-22T10:00:00Z', value: 1.5 }],
};

/** A schema whose field `value` (kg) carries `codes`. */
const coded = (codes: Record<string, unknown>) => ({
  ...good,
  properties: { ...good.properties, value: { ...good.properties.value, ...codes } },
});

/** Malformed clinical codes (docs/clinical-codes.md): each refused at load, naming file and field. */
function codeCases(): [string, Record<string, unknown>, RegExp][] {
  return [
    [
      'a LOINC code with a wrong check digit',
      coded({ 'x-loinc': '29463-8' }),
      /thing\/1\.schema\.json: field "value": LOINC code "29463-8" has a wrong check digit \(expected 29463-7\)/,
    ],
    ['a LOINC code without its check digit', coded({ 'x-loinc': '29463' }), /must look like 8867-4/],
    ['an empty LOINC list', coded({ 'x-loinc': [] }), /x-loinc must be a LOINC code or a non-empty list/],
    [
      'an MDC code given as a reference id',
      coded({ 'x-loinc': '29463-7', 'x-mdc': 'MDC_MASS_BODY_ACTUAL' }),
      /MDC code "MDC_MASS_BODY_ACTUAL" must be the 32-bit code/,
    ],
    [
      'an MDC term code without its partition',
      coded({ 'x-loinc': '29463-7', 'x-mdc': '57664' }),
      /MDC code "57664" is not partition × 65536 \+ term code/,
    ],
    [
      'a malformed NPU code',
      coded({ 'x-loinc': '29463-7', 'x-npu': 'NPU3804' }),
      /NPU code "NPU3804" must look like NPU03011/,
    ],
    [
      'an MDC code without a LOINC code',
      coded({ 'x-mdc': '188736' }),
      /x-mdc and x-npu need an x-loinc next to them: DK Core Basic Observation requires a LOINC code/,
    ],
    [
      'a coded field without a UCUM unit the gateway knows',
      coded({ 'x-loinc': '29463-7', 'x-unit': 'kilograms' }),
      /field "value": a coded field needs an x-unit in UCUM/,
    ],
    [
      'a code on a boolean field',
      {
        ...coded({}),
        properties: {
          ...good.properties,
          value: { type: 'boolean', 'x-loinc': '29463-7', description: 'v' },
        },
        examples: [{ ts: '2026-11-22T10:00:00Z', value: true }],
      },
      /only numeric fields can carry codes/,
    ],
  ];
}

describe('schema loading checks (start-up errors naming the file)', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'a mapped property that does not exist',
      { ...good, 'x-timeseries': { ...good['x-timeseries'], fields: ['value', 'missing'] } },
      /thing\/1\.schema\.json: x-timeseries\.fields names "missing"/,
    ],
    [
      'a field that may be integer or float',
      { ...good, properties: { ...good.properties, value: { type: ['integer', 'number'] } } },
      /field "value" must have exactly one type/,
    ],
    [
      'an unknown keyword',
      { ...good, properties: { ...good.properties, value: { type: 'number', minimun: 3 } } },
      /thing\/1\.schema\.json: .*unknown keyword: "minimun"/,
    ],
    [
      'an example that does not validate',
      { ...good, examples: [{ ts: '2026-11-22T10:00:00Z', value: 'x' }] },
      /examples\[0\] does not validate/,
    ],
    [
      'a tag without pattern or enum',
      {
        ...good,
        'x-timeseries': { ...good['x-timeseries'], tags: ['room'] },
        properties: { ...good.properties, room: { type: 'string' } },
      },
      /tag "room" must be a string with a "pattern" or an "enum"/,
    ],
    [
      'a property named like a gateway tag',
      {
        ...good,
        'x-timeseries': { ...good['x-timeseries'], fields: ['value', 'site'] },
        properties: { ...good.properties, site: { type: 'string' } },
      },
      /"site" is a tag the gateway sets itself/,
    ],
    ['additional properties allowed', { ...good, additionalProperties: true }, /additionalProperties/],
    ...codeCases(),
    ['no x-timeseries', { ...good, 'x-timeseries': undefined }, /missing "x-timeseries"/],
  ];
  it.each(cases)('refuses %s', (_name, schema, message) => {
    const dir = schemaDir({ 'thing/1.schema.json': schema });
    expect(() => loadSchemas(dir)).toThrow(message);
  });

  it('refuses a field whose type differs between two versions of one measurement', () => {
    const v2 = {
      ...good,
      properties: { ...good.properties, value: { type: 'integer' } },
      examples: [{ ts: '2026-11-22T10:00:00Z', value: 1 }],
    };
    const dir = schemaDir({ 'thing/1.schema.json': good, 'thing/2.schema.json': v2 });
    expect(() => loadSchemas(dir)).toThrow(
      /thing\/2\.schema\.json: field "value" is integer here but float in .*thing\/1\.schema\.json/,
    );
  });

  it('refuses a file that is not JSON, naming it', () => {
    const dir = schemaDir({ 'thing/1.schema.json': '{ nope' });
    expect(() => loadSchemas(dir)).toThrow(/thing\/1\.schema\.json: not valid JSON/);
  });

  it('refuses a badly named schema file', () => {
    const dir = schemaDir({ 'thing/v1.json': good });
    expect(() => loadSchemas(dir)).toThrow(/thing\/v1\.json: schema files are named/);
  });

  it('loads a valid schema and picks the newest version', () => {
    const dir = schemaDir({ 'thing/1.schema.json': good, 'thing/2.schema.json': good });
    expect(loadSchemas(dir).latest('thing')?.key).toBe('thing@2');
  });
});
