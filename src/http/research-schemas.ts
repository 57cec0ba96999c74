// The schemas of the research routes: path parameters, query parameters and responses, written once
// with TypeBox so that the handlers' types, the request checks and /openapi.json all come from
// them. Must never describe a route that research.ts does not serve.
import type { Readable } from 'node:stream';
import { type Static, type TSchema, Type } from 'typebox';
import { FORMATS } from '../query/formats.js';
import { READINGS_PARAMS } from '../query/readings-params.js';

/** Every route here is tagged so; the spec lists tagged routes only (health and metrics stay out). */
export const RESEARCH_TAG = 'research';

const ERROR = Type.Object({ error: Type.String() }, { description: 'What was wrong, readable' });
const PROJECT_ID = Type.Object({ id: Type.String({ description: 'The project id' }) });

const DENIED = {
  401: { ...ERROR, description: 'Missing, unknown, expired or revoked token' },
  403: { ...ERROR, description: 'Token of another project, or a staff token' },
  429: {
    ...ERROR,
    description: 'Too many bad tokens from this address: refused unchecked for the seconds in Retry-After',
  },
  503: {
    ...ERROR,
    description:
      "The project's pseudonymisation secret (or the token's hash) is missing from the gateway's secrets file",
  },
};

export const DICTIONARY_ROW = Type.Object({
  measurement: Type.String(),
  field: Type.String(),
  kind: Type.String(),
  unit: Type.Union([Type.String(), Type.Null()]),
  description: Type.Union([Type.String(), Type.Null()]),
  deviceTypes: Type.Array(Type.String()),
  schemaVersions: Type.Array(Type.String()),
  loinc: Type.Array(Type.String(), { description: 'LOINC codes, the primary one first' }),
  mdc: Type.Union([Type.String(), Type.Null()], { description: 'IEEE 11073-10101 code (32-bit, decimal)' }),
  npu: Type.Union([Type.String(), Type.Null()], { description: 'NPU code' }),
  fhir: Type.Boolean({
    description: 'Whether format=fhir carries this field (false: the field has no LOINC code, left out)',
  }),
});

export const DICTIONARY_COLUMN = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  description: Type.String(),
  values: Type.Optional(Type.Array(Type.Object({ value: Type.String(), meaning: Type.String() }))),
});

export const DICTIONARY_ROUTE = {
  tags: [RESEARCH_TAG],
  summary:
    'Data dictionary: measurements, fields, units, descriptions, device types and schema versions; the columns besides the fields (provenance) and what their values mean',
  security: [],
  response: {
    200: Type.Object(
      { fields: Type.Array(DICTIONARY_ROW), columns: Type.Array(DICTIONARY_COLUMN) },
      { description: 'The dictionary' },
    ),
  },
};

/** A route under /api/v1/projects/{id}: token-checked, answering with `body` when allowed. */
function projectRoute<T extends TSchema>(summary: string, body: T) {
  return { tags: [RESEARCH_TAG], summary, params: PROJECT_ID, response: { 200: body, ...DENIED } };
}

const SUBJECT = Type.Object({ subject: Type.String(), consentFrom: Type.String() });
const SUBJECTS = Type.Object(
  { project: Type.String(), subjects: Type.Array(SUBJECT) },
  { description: 'Subjects' },
);
export type SubjectsBody = Static<typeof SUBJECTS>;
export const SUBJECTS_ROUTE = projectRoute(
  'Pseudonyms of the consenting subjects, with their consent date',
  SUBJECTS,
);

const DEVICE = Type.Object({
  subject: Type.String(),
  device: Type.String({ description: "The device's project pseudonym, as in the export's device column" }),
  deviceType: Type.String(),
  schemaVersion: Type.Integer(),
});
const DEVICES = Type.Object(
  { project: Type.String(), devices: Type.Array(DEVICE) },
  { description: 'Devices' },
);
export type DevicesBody = Static<typeof DEVICES>;
export const DEVICES_ROUTE = projectRoute('Device types per pseudonym (no device ids)', DEVICES);

/** One body schema per format: the rows are streamed as bytes (a Readable), never serialised. */
const ROWS_CONTENT = Object.fromEntries(
  Object.values(FORMATS).map((mime) => [
    mime.split(';')[0] as string,
    { schema: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }) },
  ]),
);

export const READINGS_ROUTE = {
  tags: [RESEARCH_TAG],
  summary: 'Readings, raw or aggregated, streamed',
  params: PROJECT_ID,
  querystring: READINGS_PARAMS,
  response: {
    200: {
      description:
        'Rows: time (RFC 3339 UTC, nanoseconds unless `precision`), subject and device (project pseudonyms), device_type, schema_version, provenance, the tags of the schemas, then the fields; ordered by time, then pseudonym (or by subject with order=subject). format=fhir: FHIR R4 Device and Observation resources, one Observation per coded field (docs/clinical-codes.md)',
      headers: {
        'x-livinglab-export': { type: 'string', description: "This export's id in the audit log" },
      },
      content: ROWS_CONTENT,
    },
    400: { ...ERROR, description: 'A bad parameter, with a readable message' },
    502: {
      ...ERROR,
      description: "InfluxDB refused the export's query or could not be reached: its message",
    },
    ...DENIED,
    503: {
      ...ERROR,
      description:
        "The audit log cannot be written, or the project's secret is missing from the secrets file: no export is given out",
    },
  },
};
