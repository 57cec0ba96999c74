// The ops listener: /healthz, /readyz and /metrics for probes and Prometheus, on its own port.
// Bound to loopback (the default) it is open; bound anywhere else it answers /readyz and /metrics
// only with `Authorization: Bearer <ops token>`, and app.ts refuses to start it there without a
// token. The token is compared in constant time and never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { Denied } from '../query/access.js';
import { createFastify } from './server.js';
import type { TokenGuard } from './token-guard.js';

export interface OpsDeps {
  health: () => Record<string, unknown>;
  /** Reasons the gateway is not ready to take readings; empty when it is. */
  readiness: () => Promise<string[]>;
  metrics: Registry;
  /** Required on /readyz and /metrics when set. */
  token: string | undefined;
  guard: TokenGuard;
  log?: Logger;
}

/** True for an address only this machine can reach: 127.0.0.0/8, ::1 (also v4-mapped), localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const v4 = host.replace(/^::ffff:/i, '');
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}

// Digests of equal length, so timingSafeEqual neither throws nor tells the token's length.
const digest = (s: string) => createHash('sha256').update(s).digest();

function checkOpsToken(expected: string, authorization: string | undefined): Promise<{ ok: true } | Denied> {
  const deny = (reason: 'missing' | 'malformed' | 'wrong-secret', message: string): Denied => ({
    ok: false,
    status: 401,
    reason,
    message,
  });
  if (!authorization)
    return Promise.resolve(deny('missing', 'send "Authorization: Bearer <ops token>" (LIVINGLAB_OPS_TOKEN)'));
  const bearer = /^Bearer (\S+)$/.exec(authorization)?.[1];
  if (!bearer)
    return Promise.resolve(deny('malformed', 'the Authorization header is not "Bearer <ops token>"'));
  const ok = timingSafeEqual(digest(bearer), digest(expected));
  return Promise.resolve(ok ? { ok: true as const } : deny('wrong-secret', 'wrong ops token'));
}

export function buildOpsHttp(deps: OpsDeps): FastifyInstance {
  const app = createFastify(deps.log);
  const { token } = deps;
  const allowed = async (req: FastifyRequest, reply: FastifyReply) =>
    token === undefined ||
    (await deps.guard.guard(req, reply, () => checkOpsToken(token, req.headers.authorization))) !== undefined;
  app.get('/healthz', async () => ({ status: 'ok', ...deps.health() }));
  app.get('/readyz', async (req, reply) => {
    if (!(await allowed(req, reply))) return reply;
    const reasons = await deps.readiness();
    reply.code(reasons.length === 0 ? 200 : 503);
    return reasons.length === 0 ? { status: 'ready' } : { status: 'not ready', reasons };
  });
  app.get('/metrics', async (req, reply) => {
    if (!(await allowed(req, reply))) return reply;
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
  return app;
}
