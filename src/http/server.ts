// The gateway's HTTP server (fastify): health and Prometheus metrics; readiness and the research
// API mount here later. buildHttp does no I/O; app.ts listens.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface HttpDeps {
  /** Seconds since start, connected clients and the like: cheap facts, no I/O. */
  health: () => Record<string, unknown>;
  metrics: Registry;
}

export function buildHttp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok', ...deps.health() }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
  return app;
}
