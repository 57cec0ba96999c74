// The research API: readings of a project, pseudonymised and consent-bound, streamed, audited.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { authorise } from '../query/access.js';
import { encodeArrow } from '../query/arrow.js';
import type { AuditLog } from '../query/audit.js';
import { encodeRows, FORMATS, type Format } from '../query/formats.js';
import { pseudonym } from '../query/pseudonym.js';
import { parseReadingsQuery, QueryError, streamReadings } from '../query/readings.js';
import { subjectAt } from '../registry/assignments.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { RegistryData } from '../registry/types.js';
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
      const format = (req.query.format ?? 'csv') as string;
      try {
        if (!(format in FORMATS))
          throw new QueryError(`format must be one of ${Object.keys(FORMATS).join(', ')}`);
        query = parseReadingsQuery(access.project, deps.schemas, req.query);
      } catch (err) {
        if (err instanceof QueryError) return reply.code(400).send({ error: err.message });
        throw err;
      }
      let rows = 0;
      const rowsOut = streamReadings({
        influxUrl: deps.influxUrl,
        db: deps.db,
        project: access.project,
        query,
      });
      const schema = deps.schemas.latest(query.type);
      const kinds = query.fields.map((name) => ({
        name,
        kind:
          query.fn === 'count'
            ? ('integer' as const)
            : (schema?.timeseries.fields.find((f) => f.name === name)?.kind ?? 'float'),
      }));
      const body =
        format === 'arrow'
          ? encodeArrow(rowsOut, kinds, () => rows++)
          : Readable.from(
              encodeRows(rowsOut, format as Exclude<Format, 'arrow'>, query.fields, () => rows++),
            );
      body.once('end', () => {
        deps.audit
          .append({
            at: new Date().toISOString(),
            researcher: access.researcher,
            project: access.project.id,
            via: req.headers['x-livinglab-client'] === 'cli' ? 'cli' : 'api',
            query: {
              ...query,
              from: new Date(query.fromMs).toISOString(),
              to: new Date(query.toMs).toISOString(),
              format,
            },
            rows,
          })
          .catch((err: Error) => req.log.error({ err: err.message }, 'audit log append failed'));
      });
      return reply.type(FORMATS[format as Format]).send(body);
    },
  );
}
