// The MQTT TCP listener: binds, caps connections and reports a failed bind as LL_LISTEN_FAILED
// naming the flag. It hands each socket on untouched; the connection gate decides what may pass.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

export interface Listener {
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
}

export async function listenTcp(
  config: Config,
  log: Logger,
  onSocket: (socket: Socket) => void,
): Promise<Listener> {
  const server = createServer(onSocket);
  server.maxConnections = config.mqtt.maxConnections;
  server.listen(config.mqtt.port, config.mqtt.host);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => {
        throw err;
      }),
    ]);
  } catch (err) {
    throw new GatewayError(
      'LL_LISTEN_FAILED',
      `MQTT listener on ${config.mqtt.host}:${config.mqtt.port}: ${(err as Error).message} (--mqtt-port)`,
      { cause: err },
    );
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.mqtt.port;
  log.info({ port, host: config.mqtt.host }, 'MQTT listener started');
  return { server, port };
}
