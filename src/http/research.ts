// The research API: readings of a project, pseudonymised and consent-bound, streamed, audited.
// Each route declares its parameters and responses (research-schemas.ts); the checks and
// /openapi.json come from those declarations, so this module must never check a parameter's shape
// by hand.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import { authorise } from '../query/access.js';
import { encodeArrow } from '../query/arrow.js';
import type { AuditLog, ExportEnded } from '../query/audit.js';
import {
  codedFields,
  encodeFhir,
  type FhirContext,
  type FhirDeviceInfo,
  fhirRefusal,
} from '../query/fhir.js';
import { encodeRows, FORMATS, type Format } from '../query/formats.js';
import { devicePseudonym, pseudonym } from '../query/pseudonym.js';
import {
  exportColumns,
  parseReadingsQuery,
  QueryError,
  type ReadingRow,
  type ReadingsQuery,
} from '../query/readings.js';
import type { ParamError } from '../query/readings-params.js';
import { streamReadings } from '../query/readings-stream.js';
import { subjectAt } from '../registry/assignments.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Project, RegistryData } from '../registry/types.js';
import { buildDictionary, buildDictionaryColumns } from '../schemas/dictionary.js';
import type { SchemaSet } from '../schemas/types.js';
import { type InfluxAuth, InfluxQueryError } from '../storage/influxql.js';
import { registerApiDescription } from './openapi.js';
import type * as RouteSchemas from './research-schemas.js';
import type { DevicesBody, SubjectsBody } from './research-schemas.js';
import type { TokenGuard } from './token-guard.js';

export interface ResearchDeps {
  registry: () => RegistryData;
  schemas: SchemaSet;
  verifier: PasswordVerifier;
  audit: AuditLog;
  influxUrl: string;
  db: string;
  /** The lab's time zone: project periods, consent dates and aggregation windows are its days. */
  timeZone: string;
  /** The InfluxDB read credentials (storage/influxql.ts influxReadTarget); absent: none. */
  influxAuth?: InfluxAuth;
  /** Slows down and counts bad tokens per address (token-guard.ts). */
  guard: TokenGuard;
  /** Named when a project's key or a token's hash is missing from it (HTTP 503). */
  secretsFile?: string;
}

/** The project a request's token opens, or undefined when the guard has answered already. */
const grantProject = (deps: ResearchDeps, req: FastifyRequest, reply: FastifyReply, projectId: string) =>
  deps.guard.guard(req, reply, () =>
    authorise(
      deps.registry(),
      deps.verifier,
      req.headers.authorization,
      projectId,
      Date.now(),
      deps.secretsFile,
    ),
  );

/**
 * One validator for the research routes, set here rather than on the whole server: every error
 * is reported (the first one is shown), nothing is coerced, and a parameter outside the schema is
 * refused, not silently dropped (fastify's default removes it).
 */
function compileValidator({ schema }: { schema: object }) {
  return PARAM_AJV.compile(schema);
}
const PARAM_AJV = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false });

// Responses keep being written by JSON.stringify, byte for byte as before; the response schemas
// document them and type the handlers.
const serialise = () => (data: unknown) => JSON.stringify(data);

type TypedApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** The route schemas, and the 400 message for a parameter that fails them. */
type Schemas = typeof RouteSchemas & {
  describeParamError: typeof import('../query/readings-params.js').describeParamError;
};

/**
 * TypeBox's module graph takes about half a second to load, and every CLI command imports this
 * module through app.ts: the schemas load when the HTTP server starts, so `livinglab status` and
 * the other commands start as fast as before.
 */
async function loadSchemas(): Promise<Schemas> {
  const [routes, params] = await Promise.all([
    import('./research-schemas.js'),
    import('../query/readings-params.js'),
  ]);
  return { ...routes, describeParamError: params.describeParamError };
}

export function registerResearchRoutes(app: FastifyInstance, deps: ResearchDeps): void {
  registerApiDescription(app);
  app.register(async (plain) => {
    const schemas = await loadSchemas();
    plain.setValidatorCompiler(compileValidator);
    plain.setSerializerCompiler(serialise);
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    scope.get('/api/v1/dictionary', { schema: schemas.DICTIONARY_ROUTE }, async () => ({
      fields: buildDictionary(deps.schemas),
      columns: buildDictionaryColumns(),
    }));
    registerProjectRoutes(scope, deps, schemas);
    registerReadingsRoute(scope, deps, schemas);
  });
}

/** Subjects and devices of a project: pseudonyms (the same as in exports) and device types, never ids. */
function registerProjectRoutes(scope: TypedApp, deps: ResearchDeps, schemas: Schemas): void {
  scope.get('/api/v1/projects/:id/subjects', { schema: schemas.SUBJECTS_ROUTE }, async (req, reply) => {
    const granted = await grantProject(deps, req, reply, req.params.id);
    if (!granted) return reply;
    const p = granted.project;
    const body: SubjectsBody = {
      project: p.id,
      subjects: p.consents
        .filter((c) => !c.withdrawn)
        .map((c) => ({ subject: pseudonym(p.secret, c.subject), consentFrom: c.from }))
        .sort((a, b) => a.subject.localeCompare(b.subject)),
    };
    return body;
  });
  scope.get('/api/v1/projects/:id/devices', { schema: schemas.DEVICES_ROUTE }, async (req, reply) => {
    const granted = await grantProject(deps, req, reply, req.params.id);
    if (!granted) return reply;
    const data = deps.registry();
    const p = granted.project;
    const consented = new Set(p.consents.filter((c) => !c.withdrawn).map((c) => c.subject));
    const now = Date.now();
    const body: DevicesBody = {
      project: p.id,
      devices: data.devices
        .map((d) => ({ d, subject: subjectAt(d, now) }))
        .filter(({ d, subject }) => subject && consented.has(subject) && p.types.includes(d.type))
        .map(({ d, subject }) => ({
          subject: pseudonym(p.secret, subject as string),
          device: devicePseudonym(p.secret, d.id),
          deviceType: d.type,
          schemaVersion: d.schemaVersion,
        }))
        .sort(
          (a, b) =>
            a.subject.localeCompare(b.subject) ||
            a.deviceType.localeCompare(b.deviceType) ||
            a.device.localeCompare(b.device),
        ),
    };
    return body;
  });
}

/** An empty parameter (`from=`) means the default, as it always has: dropped before validation. */
async function dropEmptyParams(req: FastifyRequest): Promise<void> {
  const query = req.query as Record<string, unknown>;
  for (const [name, value] of Object.entries(query)) if (value === '') delete query[name];
}

/**
 * Readings: the token is checked before the parameters (a caller without access learns nothing
 * about them), so validation failures are attached to the request and answered here; the export is
 * recorded before it starts and when it ends.
 */
function registerReadingsRoute(scope: TypedApp, deps: ResearchDeps, schemas: Schemas): void {
  scope.get(
    '/api/v1/projects/:id/readings',
    { schema: schemas.READINGS_ROUTE, attachValidation: true, preValidation: dropEmptyParams },
    async (req, reply) => {
      const access = await grantProject(deps, req, reply, req.params.id);
      if (!access) return reply;
      const invalid = req.validationError?.validation?.[0] as ParamError | undefined;
      if (invalid)
        return reply.code(400).send({ error: schemas.describeParamError(invalid, access.project) });
      let query: ReadingsQuery;
      const format: Format = req.query.format ?? 'csv';
      try {
        query = parseReadingsQuery(access.project, deps.schemas, req.query, deps.timeZone);
        if (format === 'fhir') query = fhirQuery(deps.schemas, query);
      } catch (err) {
        if (err instanceof QueryError) return reply.code(400).send({ error: err.message });
        throw err;
      }
      const who = {
        export: randomUUID(),
        researcher: access.researcher,
        project: access.project.id,
        // Decided here: a client could claim anything in a header.
        via: 'api' as const,
      };
      const ended = (end: Omit<ExportEnded, 'at' | 'event' | keyof typeof who>) =>
        deps.audit.append({ at: new Date().toISOString(), event: 'export-ended', ...who, ...end });
      try {
        // Recorded before the first byte leaves, so no export goes out unrecorded.
        await deps.audit.append({
          at: new Date().toISOString(),
          event: 'export-started',
          ...who,
          query: auditQuery(req.query.type, query, format),
        });
      } catch (err) {
        req.log.error({ err }, 'audit log append failed');
        return reply.code(503).send({
          error:
            'the export audit log cannot be written, so no export is given out; lab staff: check the data folder (disk space, permissions) and the secrets file (audit key), the gateway log names the cause',
        });
      }
      const sent = { rows: 0 };
      let rows: AsyncGenerator<ReadingRow[]>;
      try {
        rows = await startRows(readRows(deps, access.project, query));
      } catch (err) {
        return refuseExport(req, reply.header('x-livinglab-export', who.export), err, ended);
      }
      const body = Readable.from(encodeExport(deps, access.project, rows, query, format, sent));
      recordExportEnd(req, reply, body, sent, ended);
      // The id of this export in the audit log, for the researcher's records.
      return reply.type(FORMATS[format]).header('x-livinglab-export', who.export).send(body);
    },
  );
}

/** The export's rows from InfluxDB, as the project's token may see them (query/readings-stream.ts). */
const readRows = (deps: ResearchDeps, project: Project, query: ReadingsQuery) =>
  streamReadings({
    influx: { url: deps.influxUrl, db: deps.db, ...(deps.influxAuth ? { auth: deps.influxAuth } : {}) },
    project,
    query,
    // Their points written before the provenance tag existed are simulated too.
    simulatedDevices: new Set(
      deps
        .registry()
        .devices.filter((d) => d.provenance === 'simulated')
        .map((d) => d.id),
    ),
  });

/**
 * The rows with the first batch already read: every subject's query has been answered (merge.ts
 * reads each stream's first batch before any row comes out), so a query InfluxDB refuses fails here, before the 200 and its first
 * byte, and can still be answered as a 502 instead of a truncated 200.
 */
async function startRows(rows: AsyncGenerator<ReadingRow[]>): Promise<AsyncGenerator<ReadingRow[]>> {
  const first = await rows.next();
  return (async function* () {
    if (first.done) return;
    yield first.value;
    yield* rows;
  })();
}

/**
 * InfluxDB refused the export's queries (credentials, rights, an unmapped bucket) or could not be
 * reached: 502 with InfluxDB's own message for the researcher; the whole error, naming InfluxDB's
 * URL and user, goes to the gateway log and the audit log, where staff look.
 */
async function refuseExport(
  req: FastifyRequest,
  reply: FastifyReply,
  err: unknown,
  appendEnd: (end: ExportEnd) => Promise<void>,
): Promise<FastifyReply> {
  await appendEnd({ status: 'failed', rows: 0, error: (err as Error).message }).catch((e: Error) =>
    req.log.error({ err: e }, 'audit log append failed'),
  );
  if (!(err instanceof InfluxQueryError)) throw err;
  req.log.error({ err }, 'export refused: InfluxDB did not answer its query');
  const { influxStatus: status } = err;
  const what =
    status === 0
      ? err.influxMessage.startsWith('the answer broke off')
        ? 'broke off its answer'
        : 'could not be reached'
      : `refused the export's query${status === 200 ? '' : ` (HTTP ${status})`}`;
  return reply.code(502).send({
    error: `InfluxDB ${what}: ${err.influxMessage}; lab staff: the gateway log names the cause (${err.code})`,
  });
}

/** What the audit log records of a query: the parameters as understood, never a subject. */
function auditQuery(type: string, q: ReadingsQuery, format: Format) {
  return {
    type,
    fields: q.fields.map((f) => f.name),
    tags: q.tags,
    fromMs: q.fromMs,
    toMs: q.toMs,
    ...(q.every ? { every: q.every } : {}),
    ...(q.fn ? { fn: q.fn } : {}),
    order: q.order,
    precision: q.precision,
    ...(q.includeSimulated ? { include: 'simulated' } : {}),
    from: new Date(q.fromMs).toISOString(),
    to: new Date(q.toMs).toISOString(),
    format,
  };
}

/**
 * The query narrowed to the fields FHIR carries (coded ones), type by type; QueryError when an asked
 * type has none (a FHIR export of it would be empty, which a receiver could take for "no readings").
 */
function fhirQuery(schemas: SchemaSet, query: ReadingsQuery): ReadingsQuery {
  const types = query.types.map((t) => {
    const fields = schemas.latest(t.type)?.timeseries.fields ?? [];
    const refusal = fhirRefusal(t.type, fields, t.fields, query.fn);
    if (refusal) throw new QueryError(refusal);
    return { ...t, fields: codedFields(fields, t.fields).map((f) => f.name) };
  });
  const kept = new Set(types.flatMap((t) => t.fields));
  return { ...query, types, fields: query.fields.filter((f) => kept.has(f.name)) };
}

/** What FHIR shows of the query's device types and of the project's devices (by pseudonym). */
function fhirContext(deps: ResearchDeps, project: Project, query: ReadingsQuery): FhirContext {
  const devices = new Map<string, FhirDeviceInfo>();
  for (const d of deps.registry().devices)
    if (project.types.includes(d.type))
      devices.set(devicePseudonym(project.secret, d.id), { vendor: d.vendor });
  const types = new Map(
    query.types.map((t) => {
      const schema = deps.schemas.latest(t.type);
      const fields = codedFields(schema?.timeseries.fields ?? [], t.fields);
      return [t.type, { type: t.type, title: schema?.title ?? t.type, fields }] as const;
    }),
  );
  return {
    types,
    defaultType: query.types[0]?.type ?? '',
    devices,
    ...(query.fn && query.every ? { aggregate: { fn: query.fn, every: query.every } } : {}),
  };
}

function encodeExport(
  deps: ResearchDeps,
  project: Project,
  rows: AsyncGenerator<ReadingRow[]>,
  query: ReadingsQuery,
  format: Format,
  sent: { rows: number },
): AsyncGenerator<string | Uint8Array> {
  const count = (n: number) => {
    sent.rows += n;
  };
  if (format === 'fhir') return encodeFhir(rows, fhirContext(deps, project, query), count);
  const columns = exportColumns(query);
  if (format !== 'arrow')
    return encodeRows(
      rows,
      format,
      columns.map((c) => c.name),
      count,
    );
  return encodeArrow(rows, columns, query.precision, count);
}

/** How an export ended, as the audit log records it. */
type ExportEnd = { status: 'finished' | 'failed' | 'cut-off'; rows: number; error?: string };

/**
 * Completes the audit record once the response is over: `failed` when producing the rows failed,
 * `finished` when the whole body reached the connection, `cut-off` when the client hung up first.
 */
function recordExportEnd(
  req: FastifyRequest,
  reply: FastifyReply,
  body: Readable,
  sent: { rows: number },
  append: (end: ExportEnd) => Promise<void>,
): void {
  let failure: string | undefined;
  body.once('error', (err: Error) => {
    failure = err.message;
  });
  const end = () => {
    const status = failure !== undefined ? 'failed' : reply.raw.writableFinished ? 'finished' : 'cut-off';
    req.log.info({ status, rows: sent.rows }, 'export ended');
    append({ status, rows: sent.rows, ...(failure !== undefined ? { error: failure } : {}) }).catch(
      (err: Error) => req.log.error({ err }, 'audit log append failed'),
    );
  };
  // A client can hang up while the start entry is being written: its response is closed already.
  if (reply.raw.closed) end();
  else reply.raw.once('close', end);
}
