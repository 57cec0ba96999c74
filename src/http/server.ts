// The gateway's HTTP server (fastify): health now; readiness, metrics and the research API mount
// here later. buildHttp does no I/O; app.ts listens.
import Fastify, { type FastifyInstance } from 'fastify';

export interface HealthDeps {
  /** Seconds since start, connected clients and the like: cheap facts, no I/O. */
  health: () => Record<string, unknown>;
}

export function buildHttp(deps: HealthDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok', ...deps.health() }));
  return app;
}
