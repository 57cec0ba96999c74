// The gateway's HTTP servers (fastify): the main one (open /healthz, the staff status view, the
// research API) and the ops one (/healthz, /readyz, /metrics; ops.ts). buildHttp does no I/O;
// app.ts listens. Every route that names devices, sites or times of activity asks for a staff
// token here; readiness and metrics are never served on the main listener. Over HTTPS (secure.ts)
// every answer carries the security headers.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';
import { authoriseStaff } from '../query/access.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { RegistryData } from '../registry/types.js';
import { type ResearchDeps, registerResearchRoutes } from './research.js';
import { type HttpsServing, registerSecurityHeaders } from './secure.js';
import type { TokenGuard } from './token-guard.js';

export interface HttpDeps {
  /** Seconds since start, connected clients and the like: cheap facts, no I/O. */
  health: () => Record<string, unknown>;
  /** The fleet at a glance, for `livinglab status`: staff only (it names devices and when they were seen). */
  status: () => unknown;
  /** The registry and verifier the staff and research tokens are checked against. */
  registry: () => RegistryData;
  verifier: PasswordVerifier;
  /** Slows down and counts bad tokens per address (token-guard.ts). */
  guard: TokenGuard;
  log?: Logger;
  research?: Omit<ResearchDeps, 'registry' | 'verifier' | 'guard'>;
  /** Serve over HTTPS (TLS configured); plain HTTP when absent. */
  https?: HttpsServing;
}

/** A fastify instance with request ids (the caller's X-Request-Id, or a new one) on every log line. */
export function createFastify(log: Logger | undefined, https?: HttpsServing): FastifyInstance {
  const app = Fastify({
    ...(log ? { loggerInstance: log as FastifyBaseLogger } : { logger: false }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ...(https ? { serverFactory: https.serverFactory } : {}),
  });
  if (https) registerSecurityHeaders(app);
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  return app;
}

export function buildHttp(deps: HttpDeps): FastifyInstance {
  const app = createFastify(deps.log, deps.https);
  app.get('/api/v1/status', async (req, reply) => {
    const access = await deps.guard.guard(req, reply, () =>
      authoriseStaff(deps.registry(), deps.verifier, req.headers.authorization),
    );
    return access ? deps.status() : reply;
  });
  if (deps.research)
    registerResearchRoutes(app, {
      ...deps.research,
      registry: deps.registry,
      verifier: deps.verifier,
      guard: deps.guard,
    });
  app.get('/healthz', async () => ({ status: 'ok', ...deps.health() }));
  return app;
}
