// The MQTT TCP listener: binds, caps connections and reports a failed bind as LL_LISTEN_FAILED
// naming the flag. It hands each socket on untouched; the connection gate decides what may pass.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { isTlsConfigured } from '../tls/material.js';

export interface Listener {
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
}

/**
 * Where plain MQTT listens: `mqtt.host` when set; otherwise every interface, or loopback only once
 * TLS is configured, so passwords and readings never cross a network in clear unless asked to.
 */
export function plainMqttHost(config: Config): string {
  if (config.mqtt.host !== '') return config.mqtt.host;
  return isTlsConfigured(config) ? '127.0.0.1' : '0.0.0.0';
}

export async function listenTcp(
  config: Config,
  log: Logger,
  onSocket: (socket: Socket) => void,
): Promise<Listener> {
  const server = createServer(onSocket);
  server.maxConnections = config.mqtt.maxConnections;
  const host = plainMqttHost(config);
  server.listen(config.mqtt.port, host);
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
      `MQTT listener on ${host}:${config.mqtt.port}: ${(err as Error).message} (--mqtt-port)`,
      { cause: err },
    );
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.mqtt.port;
  log.info({ port, host }, 'MQTT listener started');
  return { server, port };
}
