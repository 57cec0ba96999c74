// aedes callbacks: authentication, the topic ACL and the ingestion hand-off. CONNACK codes are
// chosen here and nowhere else. The pipeline runs inside authorizePublish because aedes writes the
// QoS 1 PUBACK right after that callback (DESIGN §6): the ack waits for the pipeline.
import type { Socket } from 'node:net';
import type { AedesOptions, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from '../log.js';
import {
  canConnect,
  canPublish,
  canSubscribe,
  findIdentity,
  type Identity,
  recheckIdentity,
} from '../registry/acl.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry } from '../registry/registry.js';

// [MQTT-3.2.2.3] CONNACK return codes (aedes declares them as a const enum, unusable at run time).
export const CONNACK = { IDENTIFIER_REJECTED: 2, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;

/** What the broker asks of ingestion; implemented by the pipeline, wired in app.ts. */
export type PublishHandler = (msg: {
  topic: string;
  payload: Buffer;
  identity: Identity;
  clientId: string;
  receivedAt: Date;
}) => Promise<{ forward: boolean }>;

/** Bytes a PUBLISH adds to a socket besides its topic and payload (fixed header, lengths, id). */
const PUBLISH_OVERHEAD = 9;

/**
 * True while a client's socket cannot take `bytes` more without passing its high-water mark. A
 * write past the mark makes aedes wait for 'drain' (up to its drainTimeout) while holding one of
 * mqemitter's shared concurrency slots, so a delivery that would pass it is not made at all. Only
 * an idle socket (nothing buffered) may take one message larger than the mark.
 */
export function isBackedUp(client: Client, bytes = 0): boolean {
  const conn = client.conn as Client['conn'] & Partial<Pick<Socket, 'writableHighWaterMark'>>;
  if (conn.writableNeedDrain === true) return true;
  const buffered = conn.writableLength ?? 0;
  return buffered > 0 && buffered + bytes >= (conn.writableHighWaterMark ?? 16_384);
}

function authError(returnCode: number, message: string) {
  return Object.assign(new Error(message), { returnCode });
}

export interface Hooks {
  readonly options: Pick<
    AedesOptions,
    'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'
  >;
  /** Deliveries dropped because the receiving connection was backed up. */
  readonly stats: { readonly deliveriesDropped: number };
  identityOf(client: Client): Identity | undefined;
  setIdentity(client: Client, identity: Identity): void;
}

/**
 * aedes asks authorizeSubscribe per filter; one SUBSCRIBE with 20,000 refused filters must not
 * write 20,000 lines. Its calls for one packet run in one turn of the event loop, so this logs one
 * line per client per turn: the first refused filter, the reason, and how many were refused.
 */
function createRefusalLog(log: Logger, who: (client: Client) => Record<string, unknown>) {
  const refusals = new Map<Client, { count: number; topic: string; reason: string }>();
  return (client: Client, topic: string, reason: string) => {
    const pending = refusals.get(client);
    if (pending) {
      pending.count++;
      return;
    }
    refusals.set(client, { count: 1, topic, reason });
    setImmediate(() => {
      const r = refusals.get(client);
      refusals.delete(client);
      if (r)
        log.warn(
          { ...who(client), topic: r.topic, refused: r.count, reason: r.reason },
          'subscription refused',
        );
    });
  };
}

export function createHooks(deps: {
  registry: Registry;
  verifier: PasswordVerifier;
  onPublish: PublishHandler;
  log: Logger;
  /** The id of the TCP connection a client came on, for log lines. */
  connectionIdOf?: (client: Client) => string | undefined;
}): Hooks {
  const { registry, verifier, onPublish, log } = deps;
  const who = (client: Client) => ({ clientId: client.id, connectionId: deps.connectionIdOf?.(client) });
  const identities = new WeakMap<Client, Identity>();
  // Payload buffers of messages the pipeline rejected: acknowledged, but never forwarded.
  const blocked = new WeakSet<Buffer>();

  const stats = { deliveriesDropped: 0 };
  const noteRefusal = createRefusalLog(log, who);

  const options: Hooks['options'] = {
    authenticate(client, username, password, done) {
      const refuse = (code: number, reason: string) => {
        log.warn({ ...who(client), username, reason }, 'connection refused');
        done(authError(code, reason) as never, false);
      };
      if (!username || !password)
        return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'username and password are required');
      const identity = findIdentity(registry.current(), username);
      if (!identity) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown username');
      const hash = identity.kind === 'device' ? identity.device.passwordHash : identity.account.passwordHash;
      verifier.verify(hash, password).then(
        (ok) => {
          if (!ok) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'wrong password');
          // Re-read: the registry may have changed while the hash was computed.
          const fresh = findIdentity(registry.current(), username);
          if (!fresh) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown username');
          const decision = canConnect(fresh, client.id);
          if (!decision.allow) {
            const code = 'clientId' in decision ? CONNACK.IDENTIFIER_REJECTED : CONNACK.NOT_AUTHORIZED;
            return refuse(code, decision.reason);
          }
          identities.set(client, fresh);
          done(null, true);
        },
        (err: Error) => refuse(CONNACK.NOT_AUTHORIZED, `password check failed: ${err.message}`),
      );
    },

    authorizePublish(client, packet: PublishPacket, callback) {
      const loggedIn = client ? identities.get(client) : undefined;
      if (!client || !loggedIn) return callback(new Error('not authenticated'));
      // Against the registry as it is now, not as it was at login: a will fires when enforceRegistry
      // closes a disabled, removed or moved device, and must not be stored.
      const current = recheckIdentity(registry.current(), loggedIn);
      const identity = current.allow ? current.identity : loggedIn;
      const decision = current.allow ? canPublish(identity, packet.topic) : current;
      if (!decision.allow) {
        log.warn(
          { ...who(client), topic: packet.topic, reason: decision.reason },
          'publish denied; closing connection',
        );
        return callback(new Error(decision.reason));
      }
      const isStatus = packet.topic.endsWith('/status');
      // Health data is never kept as a retained message; only status may be.
      if (!isStatus) packet.retain = false;
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      onPublish({ topic: packet.topic, payload, identity, clientId: client.id, receivedAt: new Date() }).then(
        ({ forward }) => {
          if (!forward) {
            blocked.add(payload);
            packet.payload = payload;
            if (isStatus) packet.retain = false;
          }
          callback(null);
        },
        (err: Error) => {
          // No PUBACK: the device keeps the message and sends it again.
          log.error(
            { ...who(client), topic: packet.topic, err: err.message },
            'ingestion failed; message not acknowledged',
          );
          callback(err);
        },
      );
    },

    authorizeSubscribe(client, sub: Subscription, callback) {
      const identity = identities.get(client);
      const decision = identity
        ? canSubscribe(identity, sub.topic)
        : { allow: false as const, reason: 'not authenticated' };
      if (!decision.allow) {
        noteRefusal(client, sub.topic, decision.reason);
        return callback(null, null);
      }
      // Every subscription is QoS 0: aedes has no offline-queue limit for persistent sessions
      // (aedes#1087), and only QoS > 0 subscriptions are queued while a client is offline. Devices get
      // their feedback, staff their live view, nothing piles up for an offline session. In place, so
      // the session store keeps QoS 0 too; aedes still echoes the requested QoS in the SUBACK.
      sub.qos = 0;
      callback(null, sub);
    },

    authorizeForward(client, packet) {
      if (blocked.has(packet.payload as Buffer)) return null;
      // Called per delivery. aedes makes a delivery to a socket past its high-water mark wait for
      // 'drain', holding one of mqemitter's 100 global concurrency slots; a client that stops
      // reading then stalls every delivery and piles up a backlog whose drain on disconnect
      // recursed until the stack overflowed (DESIGN §6). Drop instead, and count it.
      const bytes = Buffer.byteLength(packet.topic) + Buffer.byteLength(packet.payload) + PUBLISH_OVERHEAD;
      if (client && isBackedUp(client, bytes)) {
        stats.deliveriesDropped++;
        return null;
      }
      return packet;
    },
  };

  return {
    options,
    stats,
    identityOf: (client) => identities.get(client),
    setIdentity: (client, identity) => identities.set(client, identity),
  };
}
