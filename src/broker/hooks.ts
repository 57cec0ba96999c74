// aedes callbacks: authentication, the topic ACL and the ingestion hand-off. CONNACK codes are
// chosen here and nowhere else. The pipeline runs inside authorizePublish because aedes writes the
// QoS 1 PUBACK right after that callback (DESIGN §6): the ack waits for the pipeline.
// Logins: an unknown username costs a dummy hash like a real one, failed logins back off per
// username and address (auth-backoff.ts), and a full hashing queue refuses with CONNACK 3.
import type { AedesOptions, Client, PublishPacket, Subscription } from 'aedes';
import { isGatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { canConnect, canPublish, canSubscribe, findIdentity, type Identity } from '../registry/acl.js';
import { maxIterations, type PasswordVerifier } from '../registry/passwords.js';
import type { Registry, RegistrySnapshot } from '../registry/registry.js';
import { type BackoffOptions, createAuthBackoff } from './auth-backoff.js';

// [MQTT-3.2.2.3] CONNACK return codes (aedes declares them as a const enum, unusable at run time).
export const CONNACK = {
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

/** Refused logins by reason (unknown-user, wrong-password, backoff, busy, ...), for /metrics. */
export type AuthStats = Readonly<Record<string, number>>;

/** What the broker asks of ingestion; implemented by the pipeline, wired in app.ts. */
export type PublishHandler = (msg: {
  topic: string;
  payload: Buffer;
  identity: Identity;
  clientId: string;
  receivedAt: Date;
}) => Promise<{ forward: boolean }>;

function authError(returnCode: number, message: string) {
  return Object.assign(new Error(message), { returnCode });
}

export interface Hooks {
  readonly options: Pick<
    AedesOptions,
    'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'
  >;
  identityOf(client: Client): Identity | undefined;
  setIdentity(client: Client, identity: Identity): void;
  readonly authStats: AuthStats;
}

// The cost of the dearest hash in the registry: an unknown username must cost as much as a real
// account's wrong password (staff accounts, the ones worth guessing, carry the dearest hashes).
const dummyCosts = new WeakMap<RegistrySnapshot, number>();
function dummyIterations(snapshot: RegistrySnapshot): number {
  let n = dummyCosts.get(snapshot);
  if (n === undefined) {
    const hashes = [...snapshot.devices.values(), ...snapshot.accounts.values()].map((x) => x.passwordHash);
    n = maxIterations(hashes);
    dummyCosts.set(snapshot, n);
  }
  return n;
}

const remoteAddressOf = (client: Client) =>
  (client as unknown as { conn?: { remoteAddress?: string } }).conn?.remoteAddress ?? '';

type HooksDeps = Parameters<typeof createHooks>[0];

/**
 * The login check. The CONNACK goes out when `done` is called: a refusal after failed logins is
 * held for the backoff delay (the connection waits, costing a socket but no hashing).
 */
function createAuthenticate(
  deps: HooksDeps,
  identities: WeakMap<Client, Identity>,
  who: (client: Client) => Record<string, unknown>,
): { authenticate: NonNullable<AedesOptions['authenticate']>; authStats: AuthStats } {
  const { registry, verifier, log } = deps;
  const backoff = createAuthBackoff(
    deps.backoff ?? { usernameAfter: 5, addressAfter: 20, baseMs: 1000, maxMs: 30_000 },
  );
  const authStats: Record<string, number> = {};
  const authenticate: NonNullable<AedesOptions['authenticate']> = (client, username, password, done) => {
    const address = remoteAddressOf(client);
    const refuse = (code: number, reason: string, counted: string, delayMs = 0) => {
      authStats[counted] = (authStats[counted] ?? 0) + 1;
      const fields = { ...who(client), username, remoteAddress: address, reason, delayMs };
      // A flood is counted in /metrics; only refusals a technician can act on are warnings.
      if (counted === 'backoff' || counted === 'busy') log.debug(fields, 'connection refused');
      else log.warn(fields, 'connection refused');
      const send = () => done(authError(code, reason) as never, false);
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    };
    if (!username || !password)
      return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'username and password are required', 'missing');
    const locked = backoff.lockedFor(username);
    if (locked > 0)
      return refuse(
        CONNACK.BAD_USERNAME_OR_PASSWORD,
        'too many failed logins for this username; refused without a check',
        'backoff',
        locked,
      );
    const snapshot = registry.current();
    const identity = findIdentity(snapshot, username);
    const hash = identity?.kind === 'device' ? identity.device.passwordHash : identity?.account.passwordHash;
    const checking =
      hash === undefined
        ? verifier.verifyUnknown(password, dummyIterations(snapshot), address)
        : verifier.verify(hash, password, address);
    checking.then(
      (ok) => {
        if (!ok) {
          const delay = backoff.fail(username, address);
          return identity
            ? refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'wrong password', 'wrong-password', delay)
            : refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown username', 'unknown-user', delay);
        }
        backoff.succeed(username);
        // Re-read: the registry may have changed while the hash was computed.
        const fresh = findIdentity(registry.current(), username);
        if (!fresh) return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'unknown username', 'unknown-user');
        const decision = canConnect(fresh, client.id);
        if (!decision.allow) {
          const code =
            client.id !== fresh.id && fresh.kind === 'device'
              ? CONNACK.IDENTIFIER_REJECTED
              : CONNACK.NOT_AUTHORIZED;
          return refuse(code, decision.reason, 'not-authorized');
        }
        identities.set(client, fresh);
        done(null, true);
      },
      (err: Error) =>
        isGatewayError(err) && err.code === 'LL_AUTH_BUSY'
          ? refuse(CONNACK.SERVER_UNAVAILABLE, err.message, 'busy')
          : refuse(CONNACK.NOT_AUTHORIZED, `password check failed: ${err.message}`, 'error'),
    );
  };
  return { authenticate, authStats };
}

export function createHooks(deps: {
  registry: Registry;
  verifier: PasswordVerifier;
  onPublish: PublishHandler;
  log: Logger;
  /** The id of the TCP connection a client came on, for log lines. */
  connectionIdOf?: (client: Client) => string | undefined;
  backoff?: BackoffOptions;
}): Hooks {
  const { onPublish, log } = deps;
  const who = (client: Client) => ({ clientId: client.id, connectionId: deps.connectionIdOf?.(client) });
  const identities = new WeakMap<Client, Identity>();
  const { authenticate, authStats } = createAuthenticate(deps, identities, who);
  // Payload buffers of messages the pipeline rejected: acknowledged, but never forwarded.
  const blocked = new WeakSet<Buffer>();

  const options: Hooks['options'] = {
    authenticate,

    authorizePublish(client, packet: PublishPacket, callback) {
      const identity = client ? identities.get(client) : undefined;
      if (!client || !identity) return callback(new Error('not authenticated'));
      const decision = canPublish(identity, packet.topic);
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
        log.warn({ ...who(client), topic: sub.topic, reason: decision.reason }, 'subscription refused');
        return callback(null, null);
      }
      // Devices get feedback at QoS 0: aedes has no offline-queue limit for persistent sessions (aedes#1087).
      // In place, so the session store keeps QoS 0 too; aedes still echoes the requested QoS in the SUBACK.
      if (identity?.kind === 'device') sub.qos = 0;
      callback(null, sub);
    },

    authorizeForward(_client, packet) {
      return blocked.has(packet.payload as Buffer) ? null : packet;
    },
  };

  return {
    options,
    identityOf: (client) => identities.get(client),
    setIdentity: (client, identity) => identities.set(client, identity),
    authStats,
  };
}
