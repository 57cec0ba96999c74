// The embedded MQTT broker, one MessageSource (ingest/source.ts): aedes behind a TCP listener and,
// when TLS is configured, a TLS listener (listener.ts), both with the connection gate (connection-gate.ts: frame-size guard, per-address rate,
// pre-authentication budget), connect/keepalive limits (aedes defaults: none, 30 s), the aedes
// callbacks (hooks.ts), retained online/offline status (status-publisher.ts) and registry changes
// enforced on live connections (registry-enforcement.ts). It never acknowledges a message before
// ingestion has answered for it.
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Config } from '../config/schema.js';
import type { Ingestion, MessageSource } from '../ingest/source.js';
import type { Logger } from '../log.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import type { TlsMaterial } from '../tls/material.js';
import type { BackoffOptions } from './auth-backoff.js';
import { isBackedUp } from './backlog.js';
import { type ConnectionGate, createConnectionGate } from './connection-gate.js';
import { type AuthStats, createHooks, type Hooks } from './hooks.js';
import { listenTcp, listenTls, type TlsSocketHandlers } from './listener.js';
import { enforceRegistry } from './registry-enforcement.js';
import { createIndexedPersistence } from './retained-index.js';
import { publishDeviceStatus } from './status-publisher.js';

/** The embedded source: `publish` goes out as the gateway (no ACL), resolved once aedes has routed it. */
export interface Broker extends MessageSource {
  /** The bound TCP port (useful with port 0). */
  readonly port: number;
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
  const closed = Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r()))));
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
  deps: { hooks: Hooks; gate: ConnectionGate; publish: Broker['publish']; registry: Registry; log: Logger },
): void {
  const { hooks, log } = deps;
  a.on('client', (client) => deps.gate.loggedIn(client));
  publishDeviceStatus(a, { hooks, publish: deps.publish, clients: () => clientsOf(a), log });
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
  return (a: Aedes, socket: Socket, opts: { admitted?: boolean } = {}) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let client: Client | undefined;
    const describe = () => ({
      clientId: client?.id,
      connectionId: client ? connectionIds.get(client) : undefined,
    });
    const guarded = gate.accept(socket, describe, opts);
    if (!guarded) return;
    client = a.handle(guarded.conn);
    gate.track(client, guarded.entry);
    connectionIds.set(client, `c${(++connectionSeq).toString(36)}`);
  };
}

const backoffOptions = (config: Config): BackoffOptions => ({
  usernameAfter: config.auth.usernameBackoffAfter,
  addressAfter: config.auth.addressBackoffAfter,
  baseMs: config.auth.backoffBaseMs,
  maxMs: config.auth.backoffMaxMs,
});

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
    backoff: backoffOptions(config),
  });
  const gate = createConnectionGate({ config, log, onOversize: (r) => ingestion?.rejectOversize(r) });
  let aedes: Aedes | undefined;
  let servers: Server[] = [];
  let port = 0;
  let tlsPort: number | undefined;
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
      return port;
    },
    get tlsPort() {
      return tlsPort;
    },
    get connectedClients() {
      return aedes?.connectedClients ?? 0;
    },
    async start(consumer) {
      ingestion = consumer;
      const a = await createAedes(config, hooks);
      aedes = a;
      watchClients(a, { hooks, gate, publish, registry, log });
      const listener = await listenTcp(config, log, (socket) => acceptConnection(a, socket));
      servers.push(listener.server);
      port = listener.port;
      const material = deps.tlsMaterial?.();
      if (material) {
        const handlers = tlsHandlers(gate, sockets, (s) => acceptConnection(a, s, { admitted: true }));
        const tls = await listenTls(config, material, log, handlers);
        servers.push(tls.server);
        tlsPort = tls.port;
      }
    },
    async stop() {
      const open = servers;
      servers = [];
      await closeAll(open, aedes, sockets);
      aedes = undefined;
    },
  };
}
