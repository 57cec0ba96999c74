// The embedded MQTT broker: aedes behind a TCP listener with a frame-size guard, a connection limit
// and connect/keepalive limits (aedes defaults: none, none, 30 s). Publishes retained online/offline
// status for devices and disconnects devices the registry no longer allows.
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { Aedes, type Client } from 'aedes';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { devicePrefix, recheckIdentity } from '../registry/acl.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry, RegistrySnapshot } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import { guardSocket } from './frame-guard.js';
import { createHooks, isBackedUp, type PublishHandler } from './hooks.js';
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
  }) => void;
}

export function createBroker(deps: BrokerDeps): Broker {
  const { config, registry, log } = deps;
  // Each TCP connection gets an id, so a device's reconnects can be told apart in the log.
  const connectionIds = new WeakMap<Client, string>();
  let connectionSeq = 0;
  const hooks = createHooks({ ...deps, connectionIdOf: (client) => connectionIds.get(client) });
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

      const srv = createServer((socket) => {
        // PUBACKs are tiny: without this, Nagle + delayed ACK add ~40 ms to every QoS 1 round trip.
        socket.setNoDelay(true);
        let client: Client | undefined;
        const conn = guardSocket(socket, config.mqtt.maxPacketSize, (info) => {
          log.warn(
            {
              clientId: client?.id,
              connectionId: client ? connectionIds.get(client) : undefined,
              declaredBytes: info.declared,
              limit: config.mqtt.maxPacketSize,
            },
            'packet larger than the maximum packet size; connection closed',
          );
          deps.onOversize?.({
            clientId: client?.id,
            declared: info.declared,
            remoteAddress: info.remoteAddress,
          });
        });
        client = a.handle(conn);
        connectionIds.set(client, `c${(++connectionSeq).toString(36)}`);
      });
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
        await closed;
      }
      aedes = undefined;
    },
  };
}
