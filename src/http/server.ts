// The gateway's HTTP server (fastify): health, readiness and Prometheus metrics; the research API
// mounts here later. buildHttp does no I/O; app.ts listens.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface HttpDeps {
  /** Seconds since start, connected clients and the like: cheap facts, no I/O. */
  health: () => Record<string, unknown>;
  /** Reasons the gateway is not ready to take readings; empty when it is. */
  readiness: () => Promise<string[]>;
  metrics: Registry;
}

export function buildHttp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false });
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
