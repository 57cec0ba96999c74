// The embedded MQTT broker, one MessageSource (ingest/source.ts): aedes behind a TCP listener, a
// TLS listener when TLS is configured (listener.ts) and WebSocket listeners when enabled
// (ws-listener.ts), all through the connection gate (connection-gate.ts: frame-size guard, per-address rate,
// pre-authentication budget), connect/keepalive limits (aedes defaults: none, 30 s), the aedes
// callbacks (hooks.ts), device sessions for the retained online/offline status (status-publisher.ts)
// and registry changes enforced on live connections (registry-enforcement.ts). It never acknowledges a message before
// ingestion has answered for it.
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Ingestion, MessageSource } from '../ingest/source.js';
import type { Logger } from '../log.js';
import { loginBackoffOptions } from '../registry/login.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import type { TlsMaterial } from '../tls/material.js';
import { isBackedUp } from './backlog.js';
import { type Connection, type ConnectionGate, createConnectionGate } from './connection-gate.js';
import { type AuthStats, createHooks, type Hooks } from './hooks.js';
import { listenTcp, listenTls, type TlsSocketHandlers } from './listener.js';
import { enforceRegistry } from './registry-enforcement.js';
import { createIndexedPersistence } from './retained-index.js';
import { publishDeviceStatus, type SessionListener } from './status-publisher.js';
import { listenWebSocket, type WsHandlers } from './ws-listener.js';

/** The embedded source: `publish` goes out as the gateway (no ACL), resolved once aedes has routed it. */
export interface Broker extends MessageSource {
  /** The bound TCP port (useful with port 0). */
  readonly port: number;
  /** The bound MQTT-over-WebSocket port; 0 when that listener is off. */
  readonly wsPort: number;
  /** The bound MQTT-over-secure-WebSocket port; 0 when that listener is off. */
  readonly wssPort: number;
  /** The bound MQTT over TLS port; undefined when TLS is not configured. */
  readonly tlsPort: number | undefined;
  readonly connectedClients: number;
  /** Devices with a live connection (for metrics and `livinglab status`). */
  connectedDevices(): Device[];
  /** Deliveries dropped because the receiving connection was backed up. */
  readonly deliveriesDropped: number;
  /** Connections refused or closed before login, and logins refused, for metrics. */
  readonly guardStats: BrokerGuardStats;
}

export interface BrokerGuardStats {
  /** Bytes held by connections that have not authenticated yet. */
  readonly preAuthBytes: number;
  /** Connections closed before login, by reason: rate-limit, preauth-budget, connect-too-large. */
  readonly connectionsRefused: Readonly<Record<string, number>>;
  readonly auth: AuthStats;
}

export interface BrokerDeps {
  config: Config;
  registry: Registry;
  verifier: PasswordVerifier;
  log: Logger;
  /** The server's TLS material, read when the broker starts; none: no TLS listener. */
  tlsMaterial?: () => TlsMaterial | undefined;
  /** Decides device status from session starts and ends (jobs/liveness.ts); none: online while connected. */
  onSession?: SessionListener;
  /**
   * Runs once aedes is up and before any listener opens: where retained messages are put back,
   * since aedes' persistence keeps them in memory only and no client may see the broker without them.
   */
  beforeListening?: () => Promise<void>;
}

const clientsOf = (a: Aedes) => (a as unknown as { clients: Record<string, Client> }).clients;

function publishVia(aedes: () => Aedes | undefined): Broker['publish'] {
  return (topic, payload, opts = {}) =>
    new Promise((resolve, reject) => {
      const a = aedes();
      if (!a || a.closed) return resolve();
      a.publish(
        {
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos: opts.qos ?? 0,
          retain: opts.retain ?? false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      );
    });
}

async function createAedes(config: Config, hooks: Hooks): Promise<Aedes> {
  return Aedes.createBroker({
    persistence: createIndexedPersistence(),
    ...hooks.options,
    connectTimeout: config.mqtt.connectTimeoutMs,
    keepaliveLimit: config.mqtt.keepaliveLimit,
    // Device ids are topic segments of up to 63 characters (only MQTT 3.1 limits this).
    maxClientsIdLength: 63,
    heartbeatInterval: 60_000,
  });
}

function connectedDevicesOf(a: Aedes | undefined, hooks: Hooks): Device[] {
  if (!a) return [];
  const out: Device[] = [];
  for (const client of Object.values(clientsOf(a))) {
    const identity = hooks.identityOf(client);
    if (identity?.kind === 'device' && client.connected) out.push(identity.device);
  }
  return out;
}

async function closeAll(
  servers: readonly Server[],
  a: Aedes | undefined,
  sockets: ReadonlySet<Socket>,
): Promise<void> {
  const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  // Requests still in their upgrade are not MQTT clients yet: neither aedes nor `sockets` has them.
  for (const s of servers) if ('closeAllConnections' in s) (s as HttpServer).closeAllConnections();
  if (a) {
    for (const client of Object.values(clientsOf(a))) client.close();
    await new Promise<void>((resolve) => a.close(() => resolve()));
  }
  for (const socket of sockets) socket.destroy();
  await closed;
}

function isClientBackedUp(a: Aedes | undefined, clientId: string, bytes: number): boolean {
  const clients = a ? clientsOf(a) : undefined;
  const client = clients && Object.hasOwn(clients, clientId) ? clients[clientId] : undefined;
  return client ? isBackedUp(client, bytes) : false;
}

/** The broker's own reactions to clients: login, status, errors, and registry changes. */
function watchClients(
  a: Aedes,
  deps: {
    hooks: Hooks;
    gate: ConnectionGate;
    publish: Broker['publish'];
    registry: Registry;
    log: Logger;
    onSession: SessionListener | undefined;
  },
): void {
  const { hooks, log, onSession } = deps;
  a.on('client', (client) => deps.gate.loggedIn(client));
  publishDeviceStatus(a, { hooks, publish: deps.publish, clients: () => clientsOf(a), log, onSession });
  a.on('clientError', (client, err) => log.debug({ clientId: client.id, err }, 'client error'));
  a.on('connectionError', (client, err) => log.debug({ clientId: client.id, err }, 'connection error'));
  deps.registry.on('changed', (next) => enforceRegistry(Object.values(clientsOf(a)), next, hooks, log));
}

/**
 * Hands each socket through the connection gate to aedes. It remembers every open socket, logged in
 * or not: aedes closes only the clients that logged in, and the listener's close waits for all, so
 * one socket half-way through its CONNECT (or holding a refusal) kept stop() from ever returning.
 * Bounded by mqtt.maxConnections.
 */
function createAcceptor(
  gate: ReturnType<typeof createConnectionGate>,
  connectionIds: WeakMap<Client, string>,
  sockets: Set<Socket>,
) {
  let connectionSeq = 0;
  return (a: Aedes, connection: Connection, opts: { admitted?: boolean } = {}) => {
    const { socket } = connection;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let client: Client | undefined;
    const describe = () => ({
      clientId: client?.id,
      connectionId: client ? connectionIds.get(client) : undefined,
    });
    const guarded = gate.accept(connection, describe, opts);
    if (!guarded) return;
    client = a.handle(guarded.conn);
    gate.track(client, guarded.entry);
    connectionIds.set(client, `c${(++connectionSeq).toString(36)}`);
  };
}

/** The WebSocket listeners' limits, from the MQTT ones: one packet per message at most. */
function wsLimits(config: Config) {
  return {
    maxPayload: config.mqtt.maxPacketSize,
    upgradeTimeoutMs: config.mqtt.connectTimeoutMs,
    maxConnections: config.mqtt.maxConnections,
  };
}

/** The plain MQTT-over-WebSocket listener, when listeners.ws is enabled: its port, or 0. */
async function listenWs(config: Config, log: Logger, handlers: WsHandlers, servers: Server[]) {
  const ws = config.listeners.ws;
  if (!ws.enabled) return 0;
  const listener = await listenWebSocket(
    { ...ws, name: 'ws', flag: '--ws-port', ...wsLimits(config) },
    log,
    handlers,
  );
  servers.push(listener.server);
  return listener.port;
}

/** The MQTT-over-secure-WebSocket listener, when listeners.wss is enabled: its port, or 0. */
async function listenWss(
  config: Config,
  tls: TlsMaterial | undefined,
  log: Logger,
  handlers: WsHandlers,
  servers: Server[],
) {
  const wss = config.listeners.wss;
  if (!wss.enabled) return 0;
  if (!tls)
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      'listeners.wss.enabled needs a server certificate: set tls.cert and tls.key (--tls-cert, --tls-key)',
    );
  const opts = { ...wss, name: 'wss', flag: '--wss-port', tls, ...wsLimits(config) };
  const listener = await listenWebSocket(opts, log, handlers);
  servers.push(listener.server);
  return listener.port;
}

/** The TLS listener's side of the gate: rate on the raw socket, the rest on the decrypted one. */
function tlsHandlers(
  gate: ConnectionGate,
  sockets: Set<Socket>,
  accept: (socket: TLSSocket) => void,
): TlsSocketHandlers {
  return {
    admit: (socket) => {
      // Tracked from the first byte: a half-open handshake must not keep stop() waiting.
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      return gate.admit(socket);
    },
    onSecureSocket: accept,
    onHandshakeFailed: gate.handshakeFailed,
  };
}

interface ListenerPorts {
  tcp: number;
  tls: number | undefined;
  ws: number;
  wss: number;
}

/** Opens every configured listener; each server joins `servers` as soon as it listens. */
async function openListeners(
  deps: BrokerDeps,
  gate: ConnectionGate,
  sockets: Set<Socket>,
  accept: (connection: Connection, opts?: { admitted?: boolean }) => void,
  servers: Server[],
): Promise<ListenerPorts> {
  const { config, log } = deps;
  const tcp = await listenTcp(config, log, (socket) => accept({ stream: socket, socket }));
  servers.push(tcp.server);
  const material = deps.tlsMaterial?.();
  const handlers = tlsHandlers(gate, sockets, (s) => accept({ stream: s, socket: s }, { admitted: true }));
  let tls: number | undefined;
  if (material) {
    const listener = await listenTls(config, material, log, handlers);
    servers.push(listener.server);
    tls = listener.port;
  }
  // WebSockets pass the rate at their first byte too, and the rest of the gate once upgraded.
  const web = { admit: handlers.admit, accept: (c: Connection) => accept(c, { admitted: true }) };
  const ws = await listenWs(config, log, web, servers);
  const wss = await listenWss(config, material, log, web, servers);
  return { tcp: tcp.port, tls, ws, wss };
}

export function createBroker(deps: BrokerDeps): Broker {
  const { config, registry, log } = deps;
  // Each TCP connection gets an id, so a device's reconnects can be told apart in the log.
  const connectionIds = new WeakMap<Client, string>();
  // Bound by start(): no message can arrive before the listener is open.
  let ingestion: Ingestion | undefined;
  const hooks = createHooks({
    ...deps,
    onPublish: (msg) => (ingestion as Ingestion).handle(msg),
    connectionIdOf: (client) => connectionIds.get(client),
    backoff: loginBackoffOptions(config),
  });
  const gate = createConnectionGate({ config, log, onOversize: (r) => ingestion?.rejectOversize(r) });
  let aedes: Aedes | undefined;
  let servers: Server[] = [];
  let ports: ListenerPorts = { tcp: 0, tls: undefined, ws: 0, wss: 0 };
  const publish = publishVia(() => aedes);

  const sockets = new Set<Socket>();
  const acceptConnection = createAcceptor(gate, connectionIds, sockets);

  return {
    name: 'embedded',
    publish,
    isBackedUp: (clientId, bytes = 0) => isClientBackedUp(aedes, clientId, bytes),
    get deliveriesDropped() {
      return hooks.stats.deliveriesDropped;
    },
    guardStats: {
      get preAuthBytes() {
        return gate.preAuthBytes;
      },
      get connectionsRefused() {
        return gate.refused();
      },
      get auth() {
        return hooks.authStats;
      },
    },
    connectedDevices: () => connectedDevicesOf(aedes, hooks),
    get port() {
      return ports.tcp;
    },
    get wsPort() {
      return ports.ws;
    },
    get wssPort() {
      return ports.wss;
    },
    get tlsPort() {
      return ports.tls;
    },
    get connectedClients() {
      return aedes?.connectedClients ?? 0;
    },
    async start(consumer) {
      ingestion = consumer;
      const a = await createAedes(config, hooks);
      aedes = a;
      watchClients(a, { hooks, gate, publish, registry, log, onSession: deps.onSession });
      await deps.beforeListening?.();
      ports = await openListeners(deps, gate, sockets, (c, opts) => acceptConnection(a, c, opts), servers);
    },
    async stop() {
      const open = servers;
      servers = [];
      await closeAll(open, aedes, sockets);
      aedes = undefined;
    },
  };
}
