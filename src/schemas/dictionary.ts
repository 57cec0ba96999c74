// The researchers' data dictionary, generated from the device schemas: one row per measurement
// field, with its unit, description, type, clinical codes (and so whether FHIR exports carry it),
// and the device types and schema versions that write it.
import type { SchemaSet } from './types.js';

export interface DictionaryRow {
  measurement: string;
  field: string;
  kind: string;
  unit: string | null;
  description: string | null;
  deviceTypes: string[];
  schemaVersions: string[];
  /** LOINC codes, the primary one first; empty when the field has none. */
  loinc: string[];
  mdc: string | null;
  npu: string | null;
  /** Whether `format=fhir` carries the field: only fields with a LOINC code do (DK Core). */
  fhir: boolean;
}

export function buildDictionary(schemas: SchemaSet): DictionaryRow[] {
  const rows = new Map<string, DictionaryRow>();
  for (const s of schemas.all()) {
    for (const f of s.timeseries.fields) {
      const key = `${s.timeseries.measurement}\u0000${f.name}`;
      const row = rows.get(key) ?? {
        measurement: s.timeseries.measurement,
        field: f.name,
        kind: f.kind,
        unit: f.unit ?? null,
        description: f.description ?? null,
        deviceTypes: [],
        schemaVersions: [],
        loinc: [...(f.codes?.loinc ?? [])],
        mdc: f.codes?.mdc ?? null,
        npu: f.codes?.npu ?? null,
        fhir: f.codes !== undefined,
      };
      if (!row.deviceTypes.includes(s.type)) row.deviceTypes.push(s.type);
      row.schemaVersions.push(s.key);
      rows.set(key, row);
    }
  }
  return [...rows.values()].sort(
    (a, b) => a.measurement.localeCompare(b.measurement) || a.field.localeCompare(b.field),
  );
}
