// aedes callbacks: authentication and the subscription ACL here, the publish side (ACL, ingestion
// hand-off, deliveries) in publish-hooks.ts. CONNACK codes are chosen here and nowhere else.
// Logins: an unknown username costs a dummy hash like a real one, failed logins back off per
// username and address (auth-backoff.ts), and a full hashing queue refuses with CONNACK 3. A
// connection with a client certificate and no password logs in by certificate (client-certificate.ts).
import type { AedesOptions, Client, Subscription } from 'aedes';
import { isGatewayError } from '../errors.js';
import type { Ingestion } from '../ingest/source.js';
import type { Logger } from '../log.js';
import { canConnect, canSubscribe, findIdentity, type Identity } from '../registry/acl.js';
import { maxIterations, type PasswordVerifier, parseHash } from '../registry/passwords.js';
import type { Registry, RegistrySnapshot } from '../registry/registry.js';
import { type BackoffOptions, createAuthBackoff } from './auth-backoff.js';
import { certificateLogin, peerCertificateOf } from './client-certificate.js';
import { createPublishHooks, type Who } from './publish-hooks.js';

// [MQTT-3.2.2.3] CONNACK return codes (aedes declares them as a const enum, unusable at run time).
export const CONNACK = {
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

/** Refused logins by reason (unknown-user, wrong-password, backoff, busy, ...), for /metrics. */
export type AuthStats = Readonly<Record<string, number>>;

/** What the broker asks of ingestion (Ingestion.handle, ingest/source.ts). */
export type PublishHandler = Ingestion['handle'];

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

/**
 * After a wrong password for a hash cheaper than the dearest one (a device's 1,000 iterations
 * beside staff's 210,000), hashes a dummy for the difference: otherwise a known device id was
 * refused ~200 times faster than an unknown username, which told an attacker which ids exist.
 */
async function padToDummyCost(
  verifier: PasswordVerifier,
  hash: string,
  password: string | Buffer,
  dummyCost: number,
  owner: string,
): Promise<false> {
  const parsed = parseHash(hash);
  const spent = typeof parsed === 'string' ? 0 : parsed.iterations;
  // A full hashing queue must not turn a counted wrong password into an uncounted "busy".
  if (spent < dummyCost) await verifier.verifyUnknown(password, dummyCost - spent, owner).catch(() => false);
  return false;
}

/** A name from an unauthenticated client, cut to what a log line needs. */
const clip = (name: string | undefined) =>
  name !== undefined && name.length > 64 ? `${name.slice(0, 64)}… (${name.length} characters)` : name;

const remoteAddressOf = (client: Client) =>
  (client as unknown as { conn?: { remoteAddress?: string } }).conn?.remoteAddress ?? '';

export type HooksDeps = Parameters<typeof createHooks>[0];

type Refuse = (code: number, reason: string, counted: string, delayMs?: number) => void;

/** A refusal: counted by reason, logged, and its CONNACK held for `delayMs` after failed logins. */
function createRefuser(
  log: Logger,
  authStats: Record<string, number>,
  who: (client: Client) => Record<string, unknown>,
) {
  return (
    client: Client,
    username: string | undefined,
    address: string,
    done: Parameters<NonNullable<AedesOptions['authenticate']>>[3],
  ): Refuse =>
    (code, reason, counted, delayMs = 0) => {
      authStats[counted] = (authStats[counted] ?? 0) + 1;
      // Names come from an anonymous client (up to the 8-KiB CONNECT limit): clipped, so a flood of
      // refusals costs the log ~200 bytes a line, not 16 KiB.
      const names = { clientId: clip(client.id), username: clip(username) };
      const fields = { ...who(client), ...names, remoteAddress: address, reason, delayMs };
      // A flood is counted in /metrics; only refusals a technician can act on are warnings.
      if (counted === 'backoff' || counted === 'busy') log.debug(fields, 'connection refused');
      else log.warn(fields, 'connection refused');
      const send = () => done(authError(code, reason) as never, false);
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    };
}

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
  const refuser = createRefuser(log, authStats, who);
  const authenticate: NonNullable<AedesOptions['authenticate']> = (client, username, password, done) => {
    const address = remoteAddressOf(client);
    const refuse = refuser(client, username, address, done);
    // No password: a verified client certificate may stand in for it (mutual TLS).
    const peer = password ? undefined : peerCertificateOf(client);
    if (peer) {
      const login = certificateLogin(registry.current(), client.id, username, peer);
      if (login.allow) {
        identities.set(client, login.identity);
        return done(null, true);
      }
      const code = 'clientId' in login ? CONNACK.IDENTIFIER_REJECTED : CONNACK.NOT_AUTHORIZED;
      return refuse(code, login.reason, 'certificate', backoff.fail(username ?? client.id, address));
    }
    if (!username || !password)
      return refuse(CONNACK.BAD_USERNAME_OR_PASSWORD, 'username and password are required', 'missing');
    const snapshot = registry.current();
    const identity = findIdentity(snapshot, username);
    const hash = identity?.kind === 'device' ? identity.device.passwordHash : identity?.account.passwordHash;
    const locked = backoff.lockedFor(username);
    // A lock keyed by username alone let anyone who knows a device id (another vendor, or anyone
    // timing refusals) keep that device out with one wrong password per lock period. A credential
    // verified before needs no hash, so it passes the lock: guessing gains nothing from that.
    if (locked > 0 && !(hash !== undefined && verifier.isRemembered(hash, password)))
      return refuse(
        CONNACK.BAD_USERNAME_OR_PASSWORD,
        'too many failed logins for this username; refused without a check',
        'backoff',
        locked,
      );
    const dummyCost = dummyIterations(snapshot);
    const checking =
      hash === undefined
        ? verifier.verifyUnknown(password, dummyCost, address)
        : verifier
            .verify(hash, password, address)
            .then((ok) => (ok ? true : padToDummyCost(verifier, hash, password, dummyCost, address)));
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
          const code = 'clientId' in decision ? CONNACK.IDENTIFIER_REJECTED : CONNACK.NOT_AUTHORIZED;
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
  backoff?: BackoffOptions;
}): Hooks {
  const who: Who = (client) => ({ clientId: client.id, connectionId: deps.connectionIdOf?.(client) });
  const identities = new WeakMap<Client, Identity>();
  const { authenticate, authStats } = createAuthenticate(deps, identities, who);
  const { authorizePublish, authorizeForward, stats } = createPublishHooks(deps, identities, who);
  const noteRefusal = createRefusalLog(deps.log, who);

  const authorizeSubscribe: NonNullable<AedesOptions['authorizeSubscribe']> = (
    client,
    sub: Subscription,
    callback,
  ) => {
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
  };

  return {
    options: { authenticate, authorizePublish, authorizeSubscribe, authorizeForward },
    stats,
    identityOf: (client) => identities.get(client),
    setIdentity: (client, identity) => identities.set(client, identity),
    authStats,
  };
}
