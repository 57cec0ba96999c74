// Opens the HTTP listener that buildHttp left closed, and reports a failed bind as
// LL_LISTEN_FAILED naming the flag. It never registers routes.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';

/** Listens on config.http and resolves the bound port (useful with port 0). */
export async function listenHttp(http: FastifyInstance, config: Config): Promise<number> {
  try {
    await http.listen({ port: config.http.port, host: config.http.host });
  } catch (err) {
    throw new GatewayError(
      'LL_LISTEN_FAILED',
      `HTTP listener on ${config.http.host}:${config.http.port}: ${(err as Error).message} (--http-port)`,
      { cause: err },
    );
  }
  const address = http.server.address();
  return typeof address === 'object' && address ? address.port : config.http.port;
}
