// MQTT over WebSocket: an HTTP server that upgrades requests for /mqtt (subprotocol `mqtt`) and
// hands each WebSocket on as a stream with the socket under it; everything else gets 404 and no
// MQTT. It bounds what a client may cost before the upgrade (header size, a timeout for slow
// headers) and the size of one WebSocket message; the connection gate does the rest, as for TCP.
// It never reads MQTT and never trusts X-Forwarded-For: the address is the TCP peer's.
import { createServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Logger } from '../log.js';
import type { TlsMaterial } from '../tls/material.js';
import type { Connection } from './connection-gate.js';
import { bindListener, type Listener } from './listener.js';

/** The one path MQTT is served on over WebSocket (the path MQTT.js and most clients use). */
export const MQTT_WS_PATH = '/mqtt';

// [MQTT-6.0.0-3] the server selects "mqtt"; "mqttv3.1" is what MQTT 3.1 clients offer.
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

// Request line and headers of an upgrade: browsers send well under 4 KiB, cookies included.
const MAX_UPGRADE_HEADER_BYTES = 8192;

export interface WsListenerOptions {
  /** For the log and errors: 'ws' or 'wss'. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The flag a technician changes when the port is taken. */
  readonly flag: string;
  /** Largest WebSocket message: a bigger one closes that connection (close code 1009). */
  readonly maxPayload: number;
  /** Time a client has to finish its upgrade request; a slower one is closed. */
  readonly upgradeTimeoutMs: number;
  readonly maxConnections: number;
  /** For wss: the server's certificate, renewed in place; plain HTTP when absent. */
  readonly tls?: TlsMaterial;
}

export interface WsHandlers {
  /** A new TCP connection, before TLS or HTTP: false closes it (per-address rate). */
  admit(socket: Socket): boolean;
  /** An upgraded WebSocket, ready for MQTT. */
  accept(connection: Connection): void;
}

const pathOf = (req: IncomingMessage) => (req.url ?? '').split('?')[0];

function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function createUpgrader(opts: WsListenerOptions, onConnection: WsHandlers['accept']) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    // A compressed message can inflate far beyond maxPayload's intent; MQTT payloads gain little.
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  return (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(req) !== MQTT_WS_PATH) return refuseUpgrade(socket, '404 Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      const raw = req.socket as Socket;
      // aedes and the auth hooks read conn.remoteAddress; a WebSocket stream has none of its own.
      Object.defineProperty(stream, 'remoteAddress', { value: raw.remoteAddress, enumerable: true });
      onConnection({ stream, socket: raw });
    });
  };
}

/**
 * The HTTP or HTTPS server under the WebSocket. A renewed certificate is applied with
 * setSecureContext: new connections get it, connected devices stay connected. A TLS handshake gets
 * the upgrade timeout to finish, so a half-open handshake cannot hold a socket.
 */
function createUpgradeServer(opts: WsListenerOptions, options: ServerOptions): Server | HttpsServer {
  const material = opts.tls;
  if (!material) return createServer(options);
  const server = createHttpsServer({
    ...options,
    ...material.options(),
    handshakeTimeout: opts.upgradeTimeoutMs,
  });
  material.onReload(() => server.setSecureContext(material.options()));
  // Garbage, plain HTTP or a timed-out handshake: close that connection, keep serving the rest.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return server;
}

/** Starts an MQTT-over-WebSocket listener; each upgraded connection goes to `handlers.accept`. */
export async function listenWebSocket(
  opts: WsListenerOptions,
  log: Logger,
  handlers: WsHandlers,
): Promise<Listener> {
  const server = createUpgradeServer(opts, {
    maxHeaderSize: MAX_UPGRADE_HEADER_BYTES,
    headersTimeout: opts.upgradeTimeoutMs,
    requestTimeout: opts.upgradeTimeoutMs,
    // Node checks the two timeouts above only this often (default 30 s).
    connectionsCheckingInterval: Math.min(1000, opts.upgradeTimeoutMs),
  });
  server.maxConnections = opts.maxConnections;
  // The rate is checked before the connection costs a key exchange or an HTTP parse.
  server.on('connection', (socket: Socket) => {
    if (!handlers.admit(socket)) socket.destroy();
  });
  server.on('upgrade', createUpgrader(opts, handlers.accept));
  // A plain request gets no MQTT: 426 on the MQTT path (a browser opened it), 404 elsewhere.
  server.on('request', (req, res) => {
    res.writeHead(pathOf(req) === MQTT_WS_PATH ? 426 : 404, { connection: 'close', 'content-length': 0 });
    res.end();
  });
  const port = await bindListener(server, { ...opts, name: `MQTT ${opts.name}` });
  log.info({ port, host: opts.host, path: MQTT_WS_PATH }, `MQTT ${opts.name} listener started`);
  return { server, port };
}
