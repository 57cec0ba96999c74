// Opens an HTTP listener that buildHttp or buildOpsHttp left closed, and reports a failed bind as
// LL_LISTEN_FAILED naming the flag. It never registers routes.
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';

/** Listens on host:port and resolves the bound port (useful with port 0). */
export async function listenHttp(
  http: FastifyInstance,
  where: { host: string; port: number; name: string; flag: string },
): Promise<number> {
  try {
    await http.listen({ port: where.port, host: where.host });
  } catch (err) {
    throw new GatewayError(
      'LL_LISTEN_FAILED',
      `${where.name} listener on ${where.host}:${where.port}: ${(err as Error).message} (${where.flag})`,
      { cause: err },
    );
  }
  const address = http.server.address();
  return typeof address === 'object' && address ? address.port : where.port;
}
