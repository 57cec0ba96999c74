// The MQTT listeners, plain TCP and TLS: they bind, cap connections and report a failed bind as
// LL_LISTEN_FAILED naming the flag. They hand each socket on untouched; the connection gate
// decides what may pass.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { isTlsConfigured, type TlsMaterial } from '../tls/material.js';

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

/**
 * Binds `server` to host:port and resolves the bound port (useful with port 0); a failed bind is
 * LL_LISTEN_FAILED naming the listener and the flag that moves it.
 */
export async function bindListener(
  server: Pick<Server, 'listen' | 'address'> & NodeJS.EventEmitter,
  where: { name: string; host: string; port: number; flag: string },
): Promise<number> {
  server.listen(where.port, where.host);
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
      `${where.name} listener on ${where.host}:${where.port}: ${(err as Error).message} (${where.flag})`,
      { cause: err },
    );
  }
  const address = server.address();
  return typeof address === 'object' && address ? address.port : where.port;
}

export async function listenTcp(
  config: Config,
  log: Logger,
  onSocket: (socket: Socket) => void,
): Promise<Listener> {
  const server = createServer(onSocket);
  server.maxConnections = config.mqtt.maxConnections;
  const host = plainMqttHost(config);
  const port = await bindListener(server, {
    name: 'MQTT',
    host,
    port: config.mqtt.port,
    flag: '--mqtt-port',
  });
  log.info({ port, host }, 'MQTT listener started');
  return { server, port };
}

export interface TlsListener extends Listener {
  readonly server: TlsServer;
}

export interface TlsSocketHandlers {
  /** A new TCP connection, before its handshake: false closes it (per-address rate). */
  admit(socket: Socket): boolean;
  /** A finished handshake: the decrypted stream, ready for MQTT. */
  onSecureSocket(socket: TLSSocket): void;
  /** A handshake that failed or timed out: that connection has just been closed. */
  onHandshakeFailed(err: Error, socket: TLSSocket): void;
}

/**
 * The MQTT over TLS listener (listeners.mqtts). Client certificates are asked for when `tls.ca` is
 * set but never required here (`rejectUnauthorized: false`): a device with a password and no
 * certificate must still get to the login check, which alone decides (hooks.ts). A handshake gets
 * mqtt.connectTimeout to finish, as a CONNECT does, so a half-open handshake cannot hold a socket.
 * A renewal of the files is applied with setSecureContext: new connections get the new
 * certificate, connected devices stay connected.
 */
export async function listenTls(
  config: Config,
  material: TlsMaterial,
  log: Logger,
  handlers: TlsSocketHandlers,
): Promise<TlsListener> {
  const { host, port: wanted } = config.listeners.mqtts;
  const server = createTlsServer({
    ...material.options(),
    requestCert: config.tls.ca !== '',
    rejectUnauthorized: false,
    handshakeTimeout: config.mqtt.connectTimeoutMs,
  });
  server.maxConnections = config.mqtt.maxConnections;
  // 'connection' comes with the raw socket before any handshake byte is read: the cheapest place
  // to refuse an address over its rate, before it costs a key exchange.
  server.on('connection', (socket: Socket) => {
    if (!handlers.admit(socket)) socket.destroy();
  });
  server.on('secureConnection', handlers.onSecureSocket);
  server.on('tlsClientError', (err, socket) => {
    // Node only reports a handshake timeout (emitted as an error, the socket left open): without
    // this destroy, a half-open handshake held its socket for good, past handshakeTimeout.
    socket.destroy();
    handlers.onHandshakeFailed(err, socket);
  });
  material.onReload(() => server.setSecureContext(material.options()));
  const port = await bindListener(server, {
    name: 'MQTT over TLS',
    host,
    port: wanted,
    flag: '--mqtts-port',
  });
  log.info({ port, host, clientCertificates: config.tls.ca !== '' }, 'MQTT over TLS listener started');
  return { server, port };
}
