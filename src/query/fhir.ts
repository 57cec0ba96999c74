// Export rows as FHIR R4 resources in NDJSON (the Bulk Data format, application/fhir+ndjson): one
// Observation per coded field of a row, following HL7 DK Core Basic Observation (a LOINC coding,
// NPU and IEEE 11073 MDC as further codings, a UCUM valueQuantity) and the HL7 Personal Health
// Device guide (the MDC code beside LOINC, a device reference, a stable identifier for conditional
// create). Each device's Device resource comes once, before its first Observation. Pure: rows in,
// lines out. It must never put a participant code, a device id or a site name in a resource: rows
// carry pseudonyms only, and nothing else from the registry but vendor and model goes in.
import { createHash } from 'node:crypto';
import { CODE_SYSTEMS, type FieldCodes, UCUM_UNITS } from '../schemas/codes.js';
import type { FieldSpec } from '../schemas/types.js';
import { TEXT_PIECE } from './merge.js';
import type { ReadingRow } from './readings.js';

export const FHIR_MEDIA_TYPE = 'application/fhir+ndjson';

const HTEST = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  code: 'HTEST',
  display: 'test health data',
};
const VITAL_SIGNS = {
  coding: [
    {
      system: 'http://terminology.hl7.org/CodeSystem/observation-category',
      code: 'vital-signs',
      display: 'Vital Signs',
    },
  ],
};
/** LOINC codes of the FHIR R4 vital-signs profiles: their Observations get the vital-signs category. */
const VITAL_LOINC = new Set([
  '2708-6',
  '59408-5',
  '8867-4',
  '9279-1',
  '8480-6',
  '8462-4',
  '8478-0',
  '8310-5',
  '29463-7',
]);
/** Identifier namespace of the gateway's observations (a receiver's conditional create keys on it). */
export const IDENTIFIER_SYSTEM = 'urn:livinglab-gateway:observation';

/** A coded field: what FHIR needs of a schema field. */
export interface FhirField {
  readonly name: string;
  readonly unit: string;
  readonly description?: string;
  readonly codes: FieldCodes;
}

/** A device type as FHIR shows it. */
export interface FhirType {
  readonly type: string;
  readonly title: string;
  readonly fields: readonly FhirField[];
}

/** What the registry may say of a device, by its pseudonym; never its id or site. */
export interface FhirDeviceInfo {
  readonly vendor: string;
  readonly model?: string;
}

export interface FhirContext {
  /** Device types by name; a row's `device_type` picks one, else `defaultType`. */
  readonly types: ReadonlyMap<string, FhirType>;
  readonly defaultType: string;
  /** Devices by pseudonym. A device missing here still gets a Device, without a manufacturer. */
  readonly devices: ReadonlyMap<string, FhirDeviceInfo>;
  /** Set for aggregates: each Observation then covers its window (effectivePeriod). */
  readonly aggregate?: { readonly fn: string; readonly every: string };
}

/** The fields among `fields` that FHIR can carry: those with codes (and so a UCUM unit). */
export function codedFields(fields: readonly FieldSpec[], names?: readonly string[]): FhirField[] {
  return fields
    .filter((f) => f.codes && f.unit && (names === undefined || names.includes(f.name)))
    .map((f) => ({
      name: f.name,
      unit: f.unit as string,
      codes: f.codes as FieldCodes,
      ...(f.description ? { description: f.description } : {}),
    }));
}

/**
 * Why `format=fhir` cannot serve a query (HTTP 400), or undefined. `count` is refused: a number of
 * readings is not the quantity the LOINC code names.
 */
export function fhirRefusal(
  type: string,
  fields: readonly FieldSpec[],
  names: readonly string[],
  fn?: string,
): string | undefined {
  if (fn === 'count')
    return 'format=fhir cannot carry fn=count: a count of readings is not the coded quantity; use mean, min, max or last';
  if (codedFields(fields, names).length > 0) return undefined;
  const coded = codedFields(fields).map((f) => f.name);
  return coded.length === 0
    ? `format=fhir needs a field with a LOINC code, and no field of ${type} has one (see /api/v1/dictionary, column fhir)`
    : `format=fhir needs a field with a LOINC code; of ${type} only ${coded.join(', ')} have one`;
}

const WINDOW_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * The end of an aggregate window that starts at `start` (RFC 3339 UTC), written with as many
 * fraction digits as the start: windows are whole minutes, so the digits past the millisecond carry
 * over. A `1d` window is 24 hours here (the window InfluxDB grouped by).
 */
export function windowEnd(start: string, every: string): string {
  const m = /^(\d+)([mhd])$/.exec(every);
  const ms = m ? Number(m[1]) * WINDOW_MS[m[2] as keyof typeof WINDOW_MS] : 0;
  const subMs = /\.\d{3}(\d+)Z$/.exec(start)?.[1] ?? '';
  return new Date(Date.parse(start) + ms).toISOString().replace(/Z$/, `${subMs}Z`);
}

const hash = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 40);

function codingsOf(f: FhirField): { system: string; code: string }[] {
  return [
    ...f.codes.loinc.map((code) => ({ system: CODE_SYSTEMS.loinc, code })),
    ...(f.codes.npu ? [{ system: CODE_SYSTEMS.npu, code: f.codes.npu }] : []),
    ...(f.codes.mdc ? [{ system: CODE_SYSTEMS.mdc, code: f.codes.mdc }] : []),
  ];
}

/** The Device resource for one device pseudonym. */
export function toDevice(
  pseudonym: string,
  type: FhirType,
  info: FhirDeviceInfo | undefined,
  simulated: boolean,
): Record<string, unknown> {
  return {
    resourceType: 'Device',
    id: pseudonym,
    ...(simulated ? { meta: { security: [HTEST] } } : {}),
    ...(info?.vendor ? { manufacturer: info.vendor } : {}),
    ...(info?.model ? { modelNumber: info.model } : {}),
    type: { text: `${type.title} (${type.type})` },
  };
}

/** The Observations of one row: one per coded field that has a value. */
export function toObservations(row: ReadingRow, type: FhirType, ctx: FhirContext): Record<string, unknown>[] {
  const simulated = row.provenance === 'simulated';
  const device = typeof row.device === 'string' ? row.device : undefined;
  const out: Record<string, unknown>[] = [];
  for (const f of type.fields) {
    const value = row[f.name];
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    const agg = ctx.aggregate;
    // Stable across exports of one project: device, subject, type, field, time (and the aggregate).
    // Joined with "/": "|", "," and "$" would need escaping in a receiver's identifier search.
    const parts = [device ?? '-', row.subject, type.type, f.name, row.time];
    const key = [...parts, ...(agg ? [`${agg.fn}-${agg.every}`] : [])].join('/');
    const primary = f.codes.loinc[0] as string;
    out.push({
      resourceType: 'Observation',
      id: `o-${hash(key)}`,
      ...(simulated ? { meta: { security: [HTEST] } } : {}),
      identifier: [{ system: IDENTIFIER_SYSTEM, value: key }],
      status: 'final',
      ...(VITAL_LOINC.has(primary) ? { category: [VITAL_SIGNS] } : {}),
      code: { coding: codingsOf(f), ...(f.description ? { text: f.description } : {}) },
      subject: { reference: `Patient/${row.subject}` },
      ...(agg
        ? { effectivePeriod: { start: row.time, end: windowEnd(row.time, agg.every) } }
        : { effectiveDateTime: row.time }),
      valueQuantity: {
        value,
        unit: UCUM_UNITS[f.unit] ?? f.unit,
        system: CODE_SYSTEMS.ucum,
        code: f.unit,
      },
      ...(agg ? { method: { text: `${agg.fn} of the readings in each ${agg.every} window` } } : {}),
      ...(device ? { device: { reference: `Device/${device}` } } : {}),
    });
  }
  return out;
}

/**
 * NDJSON lines: for each row, its device's Device resource if not sent yet, then its Observations;
 * rows come in batches (merge.ts) and go out in pieces of about TEXT_PIECE. `onRows` counts rows (as the other formats do), not
 * resources. Memory: one entry per device.
 */
export async function* encodeFhir(
  batches: AsyncIterable<readonly ReadingRow[]>,
  ctx: FhirContext,
  onRows: (n: number) => void,
): AsyncGenerator<string> {
  const sent = new Set<string>();
  for await (const rows of batches) {
    onRows(rows.length);
    let chunk = '';
    for (const row of rows) {
      const typeName = typeof row.device_type === 'string' ? row.device_type : ctx.defaultType;
      const type = ctx.types.get(typeName);
      if (!type) continue;
      const observations = toObservations(row, type, ctx);
      if (observations.length === 0) continue;
      if (typeof row.device === 'string' && !sent.has(row.device)) {
        sent.add(row.device);
        const device = toDevice(
          row.device,
          type,
          ctx.devices.get(row.device),
          row.provenance === 'simulated',
        );
        chunk += `${JSON.stringify(device)}\n`;
      }
      for (const o of observations) chunk += `${JSON.stringify(o)}\n`;
      if (chunk.length < TEXT_PIECE) continue;
      yield chunk;
      chunk = '';
    }
    if (chunk) yield chunk;
  }
}
