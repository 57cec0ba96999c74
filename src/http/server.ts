// The gateway's HTTP server (fastify): health, readiness and Prometheus metrics; the research API
// mounts here later. Over HTTPS (secure.ts) every answer carries the security headers.
// buildHttp does no I/O; app.ts listens.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { type ResearchDeps, registerResearchRoutes } from './research.js';
import { type HttpsServing, registerSecurityHeaders } from './secure.js';

export interface HttpDeps {
  /** Seconds since start, connected clients and the like: cheap facts, no I/O. */
  health: () => Record<string, unknown>;
  /** Reasons the gateway is not ready to take readings; empty when it is. */
  readiness: () => Promise<string[]>;
  metrics: Registry;
  /** The fleet at a glance, for `livinglab status`. */
  status: () => unknown;
  log?: Logger;
  research?: ResearchDeps;
  /** Serve over HTTPS (TLS configured); plain HTTP when absent. */
  https?: HttpsServing;
}

export function buildHttp(deps: HttpDeps): FastifyInstance {
  // Each request gets an id (or keeps the caller's X-Request-Id), carried by its log lines.
  const app = Fastify({
    ...(deps.log ? { loggerInstance: deps.log as FastifyBaseLogger } : { logger: false }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ...(deps.https ? { serverFactory: deps.https.serverFactory } : {}),
  });
  if (deps.https) registerSecurityHeaders(app);
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.get('/api/v1/status', async () => deps.status());
  if (deps.research) registerResearchRoutes(app, deps.research);
  app.get('/healthz', async () => ({ status: 'ok', ...deps.health() }));
  app.get('/readyz', async (_req, reply) => {
    const reasons = await deps.readiness();
    reply.code(reasons.length === 0 ? 200 : 503);
    return reasons.length === 0 ? { status: 'ready' } : { status: 'not ready', reasons };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
  return app;
}
