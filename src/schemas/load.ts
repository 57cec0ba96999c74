// Loads device-schemas/, checks each schema against the conventions in docs/architecture.md
// (How to add, A device type) and compiles one
// ajv validator per (type, version). Every problem is a start-up error naming the file; nothing
// here runs per message.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AnySchema, ErrorObject } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { GatewayError } from '../errors.js';
import { SEGMENT_RE } from '../registry/ids.js';
import { isReadingChannel, READING_CHANNELS } from '../registry/topics.js';
import { readFieldCodes } from './codes.js';
import type { DeviceSchema, FieldKind, FieldSpec, ReadingChannel, SchemaSet } from './types.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

const BASE = 'https://schemas.livinglab.local';
const SCHEMA_FILE = /^([1-9]\d{0,5})\.schema\.json$/;
const MEASUREMENT = /^[a-z][a-z0-9_]{0,63}$/;
/** Tags every point gets from the registry; a schema may not map properties onto them. */
export const RESERVED_TAGS = new Set([
  'site',
  'device_type',
  'device_id',
  'schema_version',
  'subject',
  'provenance',
]);
const FIELD_NAME = /^[a-z][a-zA-Z0-9_]{0,63}$/;

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(file: string, message: string, cause?: unknown): never {
  throw new GatewayError('LL_SCHEMA_INVALID', `${file}: ${message}`, { cause });
}

function readJson(file: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(file, `not valid JSON: ${(err as Error).message}`, err);
  }
  if (!isObject(parsed)) fail(file, 'a schema must be a JSON object');
  return parsed;
}

function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: false });
  addFormats(ajv);
  // Our annotations: known keywords, so that strict mode still catches misspelt real ones.
  ajv.addKeyword({ keyword: 'x-unit', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-timeseries', schemaType: 'object' });
  // Clinical codes (codes.ts checks their form; FHIR exports carry them).
  ajv.addKeyword({ keyword: 'x-loinc', schemaType: ['string', 'array'] });
  ajv.addKeyword({ keyword: 'x-mdc', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-npu', schemaType: 'string' });
  return ajv;
}

/** Resolves a property schema through one `$ref` (local or to _common) for the mapping checks. */
function resolveProperty(prop: JsonObject, root: JsonObject, commons: Map<string, JsonObject>): JsonObject {
  const ref = prop.$ref;
  if (typeof ref !== 'string') return prop;
  const [doc, pointer = ''] = ref.split('#');
  const target = doc ? commons.get(doc.replace(/^(\.\.\/)?_common\//, '')) : root;
  if (!target) return prop;
  let node: unknown = target;
  for (const part of pointer.split('/').filter(Boolean)) node = isObject(node) ? node[part] : undefined;
  return isObject(node) ? { ...node, ...prop } : prop;
}

function fieldKind(prop: JsonObject): FieldKind | undefined {
  switch (prop.type) {
    case 'integer':
      return 'integer';
    case 'number':
      return 'float';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      return undefined;
  }
}

function checkMapping(
  file: string,
  schema: JsonObject,
  commons: Map<string, JsonObject>,
): { channel: ReadingChannel; mapping: DeviceSchema['timeseries'] } {
  const ts = schema['x-timeseries'];
  if (!isObject(ts)) fail(file, 'missing "x-timeseries" (measurement, time, tags, fields)');
  const allowed = new Set(['measurement', 'time', 'tags', 'fields', 'channel']);
  for (const key of Object.keys(ts)) if (!allowed.has(key)) fail(file, `x-timeseries: unknown key "${key}"`);
  const { measurement, time, tags = [], fields, channel = 'telemetry' } = ts;
  if (typeof measurement !== 'string' || !MEASUREMENT.test(measurement)) {
    fail(file, 'x-timeseries.measurement must be a lower-case name like "pulse_oximeter"');
  }
  if (!isReadingChannel(channel))
    fail(file, `x-timeseries.channel must be ${READING_CHANNELS.map((c) => `"${c}"`).join(' or ')}`);
  if (schema.type !== 'object' || !isObject(schema.properties))
    fail(file, 'a device schema must be an object with "properties"');
  if (schema.additionalProperties !== false) {
    fail(
      file,
      'set "additionalProperties": false, so that misspelt keys are rejected instead of silently dropped',
    );
  }
  const props = schema.properties;
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const prop = (name: unknown, role: string): JsonObject => {
    if (typeof name !== 'string') fail(file, `x-timeseries.${role}: names must be strings`);
    const p = props[name];
    if (!isObject(p))
      fail(file, `x-timeseries.${role} names "${name}", which is not a property of the schema`);
    return resolveProperty(p, schema, commons);
  };
  if (typeof time !== 'string') fail(file, 'x-timeseries.time must name the timestamp property');
  const timeProp = prop(time, 'time');
  if (timeProp.type !== 'string' || timeProp.format !== 'date-time') {
    fail(file, `time property "${time}" must be {"type": "string", "format": "date-time"}`);
  }
  if (!required.has(time)) fail(file, `time property "${time}" must be required`);
  if (!Array.isArray(tags)) fail(file, 'x-timeseries.tags must be an array');
  for (const tag of tags) {
    const p = prop(tag, 'tags');
    if (p.type !== 'string' || (p.pattern === undefined && p.enum === undefined)) {
      // Tag values are written unquoted; an unconstrained string could carry a newline and split a line.
      fail(file, `tag "${String(tag)}" must be a string with a "pattern" or an "enum"`);
    }
  }
  if (!Array.isArray(fields) || fields.length === 0)
    fail(file, 'x-timeseries.fields must list at least one field');
  const specs: FieldSpec[] = fields.map((name) => {
    const p = prop(name, 'fields');
    if (!FIELD_NAME.test(name as string)) fail(file, `field name "${String(name)}" must match ${FIELD_NAME}`);
    const kind = fieldKind(p);
    if (!kind) {
      fail(
        file,
        `field "${String(name)}" must have exactly one type (integer, number, boolean or string); ` +
          'a value that can be an integer one day and a float the next makes an InfluxDB field type conflict',
      );
    }
    return fieldSpec(file, name as string, kind, p);
  });
  for (const name of [...tags, ...fields]) {
    if (RESERVED_TAGS.has(name as string)) {
      fail(
        file,
        `"${String(name)}" is a tag the gateway sets itself (${[...RESERVED_TAGS].join(', ')}); rename the property`,
      );
    }
  }
  const mapped = new Set<unknown>([time, ...tags, ...fields]);
  if (mapped.size !== 1 + tags.length + fields.length) fail(file, 'x-timeseries maps one property twice');
  return { channel, mapping: { measurement, time, tags: tags as string[], fields: specs } };
}

/** One field's spec, its clinical codes checked (a malformed code names the field). */
function fieldSpec(file: string, name: string, kind: FieldKind, p: JsonObject): FieldSpec {
  const unit = typeof p['x-unit'] === 'string' ? p['x-unit'] : undefined;
  const codes = readFieldCodes(p, kind, unit);
  if (typeof codes === 'string') fail(file, `field "${name}": ${codes}`);
  return {
    name,
    kind,
    ...(unit !== undefined ? { unit } : {}),
    ...(typeof p.description === 'string' ? { description: p.description } : {}),
    ...(codes ? { codes } : {}),
  };
}

export function formatAjvErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
}

function readFolder(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    throw new GatewayError(
      'LL_SCHEMA_INVALID',
      `cannot read schema folder ${dir}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** Registers `_common/*.schema.json` with ajv (for `$ref`) and returns them by file name. */
function loadCommons(ajv: Ajv2020, commonDir: string): Map<string, JsonObject> {
  const commons = new Map<string, JsonObject>();
  for (const name of readdirSync(commonDir).sort()) {
    if (!name.endsWith('.schema.json')) continue;
    const file = join(commonDir, name);
    const schema = { ...readJson(file), $id: `${BASE}/_common/${name}` };
    try {
      ajv.addSchema(schema as AnySchema);
    } catch (err) {
      fail(file, (err as Error).message, err);
    }
    commons.set(name, schema);
  }
  return commons;
}

type MeasurementKinds = Map<string, { file: string; kinds: Map<string, FieldKind> }>;

// Every schema writing to one measurement must give each field the same type.
function checkFieldKinds(
  measurements: MeasurementKinds,
  file: string,
  mapping: DeviceSchema['timeseries'],
): void {
  const seen = measurements.get(mapping.measurement);
  if (!seen) {
    measurements.set(mapping.measurement, {
      file,
      kinds: new Map(mapping.fields.map((f) => [f.name, f.kind])),
    });
    return;
  }
  for (const f of mapping.fields) {
    const prev = seen.kinds.get(f.name);
    if (prev && prev !== f.kind) {
      fail(file, `field "${f.name}" is ${f.kind} here but ${prev} in ${seen.file} (same measurement)`);
    }
    seen.kinds.set(f.name, f.kind);
  }
}

interface LoadContext {
  readonly ajv: Ajv2020;
  readonly commons: Map<string, JsonObject>;
  readonly measurements: MeasurementKinds;
}

/** One `{type}/{version}.schema.json`: checked, compiled, its examples validated. */
function loadSchemaFile(ctx: LoadContext, type: string, typeDir: string, name: string): DeviceSchema {
  const file = join(typeDir, name);
  const m = SCHEMA_FILE.exec(name);
  if (!m) fail(file, 'schema files are named {version}.schema.json, for example 1.schema.json');
  const version = Number(m[1]);
  const raw = readJson(file);
  if (raw.$schema !== 'https://json-schema.org/draft/2020-12/schema') {
    fail(file, '"$schema" must be "https://json-schema.org/draft/2020-12/schema"');
  }
  const { channel, mapping } = checkMapping(file, raw, ctx.commons);
  let validate: DeviceSchema['validate'];
  try {
    validate = ctx.ajv.compile({ ...raw, $id: `${BASE}/${type}/${name}` });
  } catch (err) {
    fail(file, (err as Error).message, err);
  }
  const examples = Array.isArray(raw.examples) ? raw.examples : [];
  if (examples.length === 0) fail(file, 'add at least one valid message under "examples"');
  examples.forEach((ex, i) => {
    if (!validate(ex)) fail(file, `examples[${i}] does not validate: ${formatAjvErrors(validate.errors)}`);
  });
  checkFieldKinds(ctx.measurements, file, mapping);
  return {
    key: `${type}@${version}`,
    type,
    version,
    file,
    title: typeof raw.title === 'string' ? raw.title : type,
    description: typeof raw.description === 'string' ? raw.description : '',
    channel,
    timeseries: mapping,
    validate,
    examples,
  };
}

function toSchemaSet(dir: string, byKey: Map<string, DeviceSchema>): SchemaSet {
  const all = [...byKey.values()];
  return {
    dir,
    get: (type, version) => byKey.get(`${type}@${version}`),
    latest: (type) =>
      all
        .filter((s) => s.type === type)
        .reduce<DeviceSchema | undefined>((a, s) => (!a || s.version > a.version ? s : a), undefined),
    all: () => all,
  };
}

/** Loads and checks every schema under `dir`. Throws GatewayError (LL_SCHEMA_INVALID) naming the file. */
export function loadSchemas(dir: string): SchemaSet {
  const entries = readFolder(dir);
  const ajv = createAjv();
  const commons = entries.includes('_common')
    ? loadCommons(ajv, join(dir, '_common'))
    : new Map<string, JsonObject>();
  const ctx: LoadContext = { ajv, commons, measurements: new Map() };
  const byKey = new Map<string, DeviceSchema>();
  for (const type of entries) {
    if (type === '_common' || type.startsWith('.')) continue;
    const typeDir = join(dir, type);
    if (!statSync(typeDir).isDirectory()) continue;
    if (!SEGMENT_RE.test(type))
      fail(typeDir, 'a device type folder name must be a topic segment (a-z, 0-9, "-")');
    for (const name of readdirSync(typeDir).sort()) {
      const schema = loadSchemaFile(ctx, type, typeDir, name);
      byKey.set(schema.key, schema);
    }
  }
  return toSchemaSet(dir, byKey);
}
