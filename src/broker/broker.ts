// The embedded MQTT broker: aedes behind a TCP listener with a frame-size guard, a connection limit
// and connect/keepalive limits (aedes defaults: none, none, 30 s), a per-address connection rate
// and a budget for what connections may buffer before they log in (preauth.ts). Publishes retained online/offline
// status for devices and disconnects devices the registry no longer allows.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type Client } from 'aedes';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { devicePrefix, recheckIdentity } from '../registry/acl.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry, RegistrySnapshot } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import { guardSocket, type OversizeInfo } from './frame-guard.js';
import { type AuthStats, createHooks, isBackedUp, type PublishHandler } from './hooks.js';
import { createConnectRateLimiter, createPreAuthBudget, type PreAuthEntry } from './preauth.js';
import { createIndexedPersistence } from './retained-index.js';

export interface Broker {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Publishes as the gateway (no ACL); resolves when aedes has routed it. */
  publish(topic: string, payload: string | Buffer, opts?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** The bound TCP port (useful with port 0). */
  readonly port: number;
  readonly connectedClients: number;
  /** Devices with a live connection (for metrics and `livinglab status`). */
  connectedDevices(): Device[];
  /** True while the client's connection cannot take `bytes` more without backing up (see hooks.ts). */
  isBackedUp(clientId: string, bytes?: number): boolean;
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
  onPublish: PublishHandler;
  log: Logger;
  /** Told of each connection closed by the frame guard (for the rejects log and metrics). */
  onOversize?: (info: {
    clientId: string | undefined;
    declared: number;
    remoteAddress: string | undefined;
    limit: number;
  }) => void;
}

// Under attack these happen thousands of times a second: one warning a minute each, counts in /metrics.
function createOccasionalWarner(log: Logger) {
  const lastWarned = new Map<string, number>();
  return (what: string, fields: Record<string, unknown>) => {
    const at = lastWarned.get(what) ?? 0;
    if (Date.now() - at < 60_000) return;
    lastWarned.set(what, Date.now());
    log.warn(fields, what);
  };
}

/** Packets over their limit: logged and told for a client that logged in, counted for a CONNECT. */
function createOversizeHandler(deps: BrokerDeps, warnSometimes: ReturnType<typeof createOccasionalWarner>) {
  let connectsRefused = 0;
  return {
    get connectsRefused() {
      return connectsRefused;
    },
    handle(info: OversizeInfo, describe: () => { clientId?: string; connectionId?: string }) {
      // Before login there is no device to tell and nobody to blame in the rejects log: an anonymous
      // flood must not fill the disk or the log. Counted in /metrics instead.
      if (info.packetType === 1) {
        connectsRefused++;
        warnSometimes('CONNECT larger than mqtt.maxConnectPacketSize; connection closed', {
          remoteAddress: info.remoteAddress,
          declaredBytes: info.declared,
          limit: info.limit,
          closedSoFar: connectsRefused,
        });
        return;
      }
      const { clientId, connectionId } = describe();
      deps.log.warn(
        { clientId, connectionId, declaredBytes: info.declared, limit: info.limit },
        'packet larger than the maximum packet size; connection closed',
      );
      deps.onOversize?.({
        clientId,
        declared: info.declared,
        remoteAddress: info.remoteAddress,
        limit: info.limit,
      });
    },
  };
}

/**
 * What a connection must pass before aedes reads it: the per-address connection rate, the frame
 * guard (CONNECT and packet size limits), and the pre-authentication buffer budget until it logs in.
 */
function createConnectionGate(deps: BrokerDeps) {
  const { config } = deps;
  const rateLimiter = createConnectRateLimiter({
    ratePerSecond: config.mqtt.connectRate,
    burst: config.mqtt.connectBurst,
  });
  const budget = createPreAuthBudget({ budgetBytes: config.mqtt.preAuthBufferBudget });
  const warnSometimes = createOccasionalWarner(deps.log);
  const oversize = createOversizeHandler(deps, warnSometimes);

  const accept = (socket: Socket, describe: () => { clientId?: string; connectionId?: string }) => {
    const remoteAddress = socket.remoteAddress ?? '';
    if (!rateLimiter.take(remoteAddress)) {
      warnSometimes('new connections over the per-address rate refused (mqtt.connectRate)', {
        remoteAddress,
        refusedSoFar: rateLimiter.refused,
      });
      socket.destroy();
      return undefined;
    }
    // PUBACKs are tiny: without this, Nagle + delayed ACK add ~40 ms to every QoS 1 round trip.
    socket.setNoDelay(true);
    const entry = budget.track(() => {
      warnSometimes('connections closed before login: pre-authentication buffer budget exceeded', {
        remoteAddress,
        budgetBytes: config.mqtt.preAuthBufferBudget,
        closedSoFar: budget.closed,
      });
      socket.destroy();
    });
    socket.once('close', () => entry.release());
    const conn = guardSocket(socket, config.mqtt.maxPacketSize, (info) => oversize.handle(info, describe), {
      maxConnectBytes: config.mqtt.maxConnectPacketSize,
      onBytes: (n) => entry.add(n),
    });
    return { conn, entry };
  };

  const preAuth = new WeakMap<Client, PreAuthEntry>();
  return {
    accept,
    track: (client: Client, entry: PreAuthEntry) => preAuth.set(client, entry),
    /** Logged in: what it buffered no longer counts against the pre-authentication budget. */
    loggedIn: (client: Client) => preAuth.get(client)?.release(),
    get preAuthBytes() {
      return budget.bufferedBytes;
    },
    refused: () => ({
      'rate-limit': rateLimiter.refused,
      'preauth-budget': budget.closed,
      'connect-too-large': oversize.connectsRefused,
    }),
  };
}

export function createBroker(deps: BrokerDeps): Broker {
  const { config, registry, log } = deps;
  // Each TCP connection gets an id, so a device's reconnects can be told apart in the log.
  const connectionIds = new WeakMap<Client, string>();
  let connectionSeq = 0;
  const hooks = createHooks({
    ...deps,
    connectionIdOf: (client) => connectionIds.get(client),
    backoff: {
      usernameAfter: config.auth.usernameBackoffAfter,
      addressAfter: config.auth.addressBackoffAfter,
      baseMs: config.auth.backoffBaseMs,
      maxMs: config.auth.backoffMaxMs,
    },
  });
  const gate = createConnectionGate(deps);
  let aedes: Aedes | undefined;
  let server: Server | undefined;
  let port = 0;

  const clientsOf = (a: Aedes) => (a as unknown as { clients: Record<string, Client> }).clients;

  const publish: Broker['publish'] = (topic, payload, opts = {}) =>
    new Promise((resolve, reject) => {
      if (!aedes || aedes.closed) return resolve();
      aedes.publish(
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

  const publishStatus = (client: Client, status: 'online' | 'offline') => {
    const identity = hooks.identityOf(client);
    if (identity?.kind !== 'device') return;
    publish(`${devicePrefix(identity.device)}status`, status, { retain: true, qos: 1 }).catch((err: Error) =>
      log.warn({ deviceId: identity.id, err: err.message }, 'could not publish status'),
    );
  };

  // A device disabled, removed, moved or given a new password loses its connection.
  const enforceRegistry = (next: RegistrySnapshot) => {
    if (!aedes) return;
    for (const client of Object.values(clientsOf(aedes))) {
      const identity = hooks.identityOf(client);
      if (!identity) continue;
      // The same rule authorizePublish applies to each publish (and will) of the connection.
      const current = recheckIdentity(next, identity);
      if (current.allow) {
        hooks.setIdentity(client, current.identity);
      } else {
        log.info(
          { clientId: client.id, reason: current.reason },
          'disconnecting client: registry no longer allows it',
        );
        client.close();
      }
    }
  };

  // Every open socket, logged in or not: aedes closes only the clients that logged in, and the
  // listener's close waits for all, so one socket half-way through its CONNECT (or holding a
  // refusal) kept stop() from ever returning. Bounded by mqtt.maxConnections.
  const sockets = new Set<Socket>();
  const acceptConnection = (a: Aedes, socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let client: Client | undefined;
    const guarded = gate.accept(socket, () => ({
      clientId: client?.id,
      connectionId: client ? connectionIds.get(client) : undefined,
    }));
    if (!guarded) return;
    client = a.handle(guarded.conn);
    gate.track(client, guarded.entry);
    connectionIds.set(client, `c${(++connectionSeq).toString(36)}`);
  };

  return {
    publish,
    isBackedUp(clientId, bytes = 0) {
      const clients = aedes ? clientsOf(aedes) : undefined;
      const client = clients && Object.hasOwn(clients, clientId) ? clients[clientId] : undefined;
      return client ? isBackedUp(client, bytes) : false;
    },
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
    connectedDevices() {
      if (!aedes) return [];
      const out: Device[] = [];
      for (const client of Object.values(clientsOf(aedes))) {
        const identity = hooks.identityOf(client);
        if (identity?.kind === 'device' && client.connected) out.push(identity.device);
      }
      return out;
    },
    get port() {
      return port;
    },
    get connectedClients() {
      return aedes?.connectedClients ?? 0;
    },
    async start() {
      const a = await Aedes.createBroker({
        persistence: createIndexedPersistence(),
        ...hooks.options,
        connectTimeout: config.mqtt.connectTimeoutMs,
        keepaliveLimit: config.mqtt.keepaliveLimit,
        // Device ids are topic segments of up to 63 characters (only MQTT 3.1 limits this).
        maxClientsIdLength: 63,
        heartbeatInterval: 60_000,
      });
      aedes = a;
      // Logged in: what it buffered no longer counts against the pre-authentication budget.
      a.on('client', (client) => gate.loggedIn(client));
      a.on('clientReady', (client) => publishStatus(client, 'online'));
      a.on('clientDisconnect', (client) => {
        // A session taken over by a new connection of the same device is not "offline".
        const current = clientsOf(a)[client.id];
        if (current && current !== client) return;
        publishStatus(client, 'offline');
      });
      a.on('clientError', (client, err) =>
        log.debug({ clientId: client.id, err: err.message }, 'client error'),
      );
      a.on('connectionError', (client, err) =>
        log.debug({ clientId: client.id, err: err.message }, 'connection error'),
      );
      registry.on('changed', (next) => enforceRegistry(next));

      const srv = createServer((socket) => acceptConnection(a, socket));
      srv.maxConnections = config.mqtt.maxConnections;
      server = srv;
      srv.listen(config.mqtt.port, config.mqtt.host);
      try {
        await Promise.race([
          once(srv, 'listening'),
          once(srv, 'error').then(([err]) => {
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
      const address = srv.address();
      port = typeof address === 'object' && address ? address.port : config.mqtt.port;
      log.info({ port, host: config.mqtt.host }, 'MQTT listener started');
    },
    async stop() {
      const srv = server;
      server = undefined;
      if (srv) {
        const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
        const a = aedes;
        if (a) {
          for (const client of Object.values(clientsOf(a))) client.close();
          await new Promise<void>((resolve) => a.close(() => resolve()));
        }
        for (const socket of sockets) socket.destroy();
        await closed;
      }
      aedes = undefined;
    },
  };
}
