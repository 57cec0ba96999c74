// The research API: readings of a project, pseudonymised and consent-bound, streamed, audited.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorise } from '../query/access.js';
import { encodeArrow } from '../query/arrow.js';
import type { AuditLog } from '../query/audit.js';
import { encodeRows, FORMATS, type Format, parseFormat } from '../query/formats.js';
import { pseudonym } from '../query/pseudonym.js';
import { parseReadingsQuery, QueryError, type ReadingsQuery, streamReadings } from '../query/readings.js';
import { subjectAt } from '../registry/assignments.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Project, RegistryData } from '../registry/types.js';
import { buildDictionary } from '../schemas/dictionary.js';
import type { SchemaSet } from '../schemas/types.js';
import { OPENAPI, renderDocsPage } from './openapi.js';

export interface ResearchDeps {
  registry: () => RegistryData;
  schemas: SchemaSet;
  verifier: PasswordVerifier;
  audit: AuditLog;
  influxUrl: string;
  db: string;
}

export function registerResearchRoutes(app: FastifyInstance, deps: ResearchDeps): void {
  app.get('/api/v1/dictionary', async () => ({ fields: buildDictionary(deps.schemas) }));
  app.get('/openapi.json', async () => OPENAPI);
  app.get('/docs', async (_req, reply) => reply.type('text/html; charset=utf-8').send(renderDocsPage()));

  // Subjects and devices of a project: pseudonyms and device types only, never ids.
  app.get<{ Params: { id: string } }>('/api/v1/projects/:id/subjects', async (req, reply) => {
    const access = await authorise(deps.registry(), deps.verifier, req.headers.authorization, req.params.id);
    if (!access.ok) return reply.code(access.status).send({ error: access.message });
    const p = access.project;
    return {
      project: p.id,
      subjects: p.consents
        .filter((c) => !c.withdrawn)
        .map((c) => ({ subject: pseudonym(p.secret, c.subject), consentFrom: c.from }))
        .sort((a, b) => a.subject.localeCompare(b.subject)),
    };
  });
  app.get<{ Params: { id: string } }>('/api/v1/projects/:id/devices', async (req, reply) => {
    const data = deps.registry();
    const access = await authorise(data, deps.verifier, req.headers.authorization, req.params.id);
    if (!access.ok) return reply.code(access.status).send({ error: access.message });
    const p = access.project;
    const consented = new Set(p.consents.filter((c) => !c.withdrawn).map((c) => c.subject));
    const now = Date.now();
    return {
      project: p.id,
      devices: data.devices
        .map((d) => ({ d, subject: subjectAt(d, now) }))
        .filter(({ d, subject }) => subject && consented.has(subject) && p.types.includes(d.type))
        .map(({ d, subject }) => ({
          subject: pseudonym(p.secret, subject as string),
          deviceType: d.type,
          schemaVersion: d.schemaVersion,
        }))
        .sort((a, b) => a.subject.localeCompare(b.subject) || a.deviceType.localeCompare(b.deviceType)),
    };
  });

  registerReadingsRoute(app, deps);
}

/** Readings: parameters checked, the export recorded before it starts and when it ends. */
function registerReadingsRoute(app: FastifyInstance, deps: ResearchDeps): void {
  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    '/api/v1/projects/:id/readings',
    async (req, reply) => {
      const access = await authorise(
        deps.registry(),
        deps.verifier,
        req.headers.authorization,
        req.params.id,
      );
      if (!access.ok) return reply.code(access.status).send({ error: access.message });
      let query: ReturnType<typeof parseReadingsQuery>;
      let format: Format;
      try {
        format = parseFormat(req.query.format);
        query = parseReadingsQuery(access.project, deps.schemas, req.query);
      } catch (err) {
        if (err instanceof QueryError) return reply.code(400).send({ error: err.message });
        throw err;
      }
      const who = {
        export: randomUUID(),
        researcher: access.researcher,
        project: access.project.id,
        via: req.headers['x-livinglab-client'] === 'cli' ? ('cli' as const) : ('api' as const),
      };
      try {
        // Recorded before the first byte leaves, so no export goes out unrecorded.
        await deps.audit.append({
          at: new Date().toISOString(),
          event: 'export-started',
          ...who,
          query: {
            ...query,
            from: new Date(query.fromMs).toISOString(),
            to: new Date(query.toMs).toISOString(),
            format,
          },
        });
      } catch (err) {
        req.log.error({ err: (err as Error).message }, 'audit log append failed');
        return reply.code(503).send({
          error:
            'the export audit log cannot be written, so no export is given out; lab staff: check the data folder (disk space, permissions)',
        });
      }
      const sent = { rows: 0 };
      const body = Readable.from(encodeExport(deps, access.project, query, format, sent));
      recordExportEnd(req, reply, body, sent, (end) =>
        deps.audit.append({ at: new Date().toISOString(), event: 'export-ended', ...who, ...end }),
      );
      // The id of this export in the audit log, for the researcher's records.
      return reply.type(FORMATS[format]).header('x-livinglab-export', who.export).send(body);
    },
  );
}

function encodeExport(
  deps: ResearchDeps,
  project: Project,
  query: ReadingsQuery,
  format: Format,
  sent: { rows: number },
): AsyncGenerator<string | Uint8Array> {
  const rowsOut = streamReadings({ influxUrl: deps.influxUrl, db: deps.db, project, query });
  const count = () => {
    sent.rows++;
  };
  if (format !== 'arrow') return encodeRows(rowsOut, format, query.fields, count);
  const schema = deps.schemas.latest(query.type);
  const kinds = query.fields.map((name) => ({
    name,
    kind:
      query.fn === 'count'
        ? ('integer' as const)
        : (schema?.timeseries.fields.find((f) => f.name === name)?.kind ?? 'float'),
  }));
  return encodeArrow(rowsOut, kinds, count);
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
      (err: Error) => req.log.error({ err: err.message }, 'audit log append failed'),
    );
  };
  // A client can hang up while the start entry is being written: its response is closed already.
  if (reply.raw.closed) end();
  else reply.raw.once('close', end);
}
