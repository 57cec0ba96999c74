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
import { isGatewayError } from '../errors.js';
import { authorise } from '../query/access.js';
import { encodeArrow } from '../query/arrow.js';
import type { AuditLog, ExportEnded } from '../query/audit.js';
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
import { buildDictionary } from '../schemas/dictionary.js';
import type { SchemaSet } from '../schemas/types.js';
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
      try {
        query = parseReadingsQuery(access.project, deps.schemas, req.query);
      } catch (err) {
        if (err instanceof QueryError) return reply.code(400).send({ error: err.message });
        throw err;
      }
      const format: Format = req.query.format ?? 'csv';
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
      const rows = await firstRowsOrRefusal(deps, access.project, query).catch(async (err: unknown) => {
        // Not InfluxDB's doing (a 500): still closed in the audit log, then thrown on.
        await ended({ status: 'failed', rows: 0, error: (err as Error).message }).catch(() => undefined);
        throw err;
      });
      if ('refused' in rows) {
        await ended({ status: 'failed', rows: 0, error: rows.refused }).catch((err: Error) =>
          req.log.error({ err }, 'audit log append failed'),
        );
        return reply.code(502).send({ error: rows.refused });
      }
      const sent = { rows: 0 };
      const body = Readable.from(encodeExport(rows.stream, query, format, sent));
      recordExportEnd(req, reply, body, sent, ended);
      // The id of this export in the audit log, for the researcher's records.
      return reply.type(FORMATS[format]).header('x-livinglab-export', who.export).send(body);
    },
  );
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
 * Starts the export's queries and waits for the first row, before any header leaves: a query that
 * InfluxDB refuses (or InfluxDB being away) is then a 502 with InfluxDB's words, never a 200 that
 * breaks off. A failure after this point aborts the connection (fastify destroys the socket when a
 * streamed body fails), so the client sees an incomplete body, not a short one.
 */
async function firstRowsOrRefusal(
  deps: ResearchDeps,
  project: Project,
  query: ReadingsQuery,
): Promise<{ stream: AsyncGenerator<ReadingRow> } | { refused: string }> {
  const simulatedDevices = new Set(
    deps
      .registry()
      .devices.filter((d) => d.provenance === 'simulated')
      .map((d) => d.id),
  );
  const rows = streamReadings({
    influx: { url: deps.influxUrl, db: deps.db },
    project,
    query,
    simulatedDevices,
  });
  let first: IteratorResult<ReadingRow>;
  try {
    first = await rows.next();
  } catch (err) {
    if (isGatewayError(err) && err.code === 'LL_INFLUX_UNAVAILABLE') return { refused: err.message };
    throw err;
  }
  async function* resumed(): AsyncGenerator<ReadingRow> {
    if (first.done) return;
    yield first.value;
    yield* rows;
  }
  return { stream: resumed() };
}

function encodeExport(
  rows: AsyncGenerator<ReadingRow>,
  query: ReadingsQuery,
  format: Format,
  sent: { rows: number },
): AsyncGenerator<string | Uint8Array> {
  const count = () => {
    sent.rows++;
  };
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

/**
 * Completes the audit record once the response is over: `failed` when producing the rows failed,
 * `finished` when the whole body reached the connection, `cut-off` when the client hung up first.
 */
function recordExportEnd(
  req: FastifyRequest,
  reply: FastifyReply,
  body: Readable,
  sent: { rows: number },
  append: (end: { status: 'finished' | 'failed' | 'cut-off'; rows: number; error?: string }) => Promise<void>,
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
