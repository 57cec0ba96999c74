// aedes callbacks: authentication and the subscription ACL here, the publish side (ACL, ingestion
// hand-off, deliveries) in publish-hooks.ts. CONNACK codes are chosen here and nowhere else.
// Logins are decided by registry/login.ts (the same rule an external broker's auth hooks use): an
// unknown username costs a dummy hash like a real one, failed logins back off per username and
// address, and a full hashing queue refuses with CONNACK 3. A
// connection with a client certificate and no password logs in by certificate (client-certificate.ts).
import type { AedesOptions, Client, Subscription } from 'aedes';
import type { Ingestion } from '../ingest/source.js';
import type { Logger } from '../log.js';
import { canSubscribe, type Identity, SUBSCRIPTION_QOS } from '../registry/acl.js';
import type { BackoffOptions } from '../registry/auth-backoff.js';
import { createPasswordLogin, DEFAULT_LOGIN_BACKOFF, type LoginRefusal } from '../registry/login.js';
import type { PasswordVerifier } from '../registry/passwords.js';
import type { Registry } from '../registry/registry.js';
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

// How each login refusal (registry/login.ts) is said in a CONNACK.
const CONNACK_FOR: Record<LoginRefusal, number> = {
  missing: CONNACK.BAD_USERNAME_OR_PASSWORD,
  backoff: CONNACK.BAD_USERNAME_OR_PASSWORD,
  'wrong-password': CONNACK.BAD_USERNAME_OR_PASSWORD,
  'unknown-user': CONNACK.BAD_USERNAME_OR_PASSWORD,
  'not-authorized': CONNACK.NOT_AUTHORIZED,
  busy: CONNACK.SERVER_UNAVAILABLE,
  error: CONNACK.NOT_AUTHORIZED,
};

/**
 * The login check (registry/login.ts decides; this says it). The CONNACK goes out when `done` is
 * called: a refusal after failed logins is held for the backoff delay (the connection waits,
 * costing a socket but no hashing).
 */
function createAuthenticate(
  deps: HooksDeps,
  identities: WeakMap<Client, Identity>,
  who: (client: Client) => Record<string, unknown>,
): { authenticate: NonNullable<AedesOptions['authenticate']>; authStats: AuthStats } {
  const { registry, verifier, log } = deps;
  const login = createPasswordLogin({ registry, verifier, backoff: deps.backoff ?? DEFAULT_LOGIN_BACKOFF });
  const authStats: Record<string, number> = {};
  const refuser = createRefuser(log, authStats, who);
  const authenticate: NonNullable<AedesOptions['authenticate']> = (client, username, password, done) => {
    const address = remoteAddressOf(client);
    const refuse = refuser(client, username, address, done);
    // No password: a verified client certificate may stand in for it (mutual TLS).
    const peer = password ? undefined : peerCertificateOf(client);
    if (peer) {
      const byCertificate = certificateLogin(registry.current(), client.id, username, peer);
      if (byCertificate.allow) {
        identities.set(client, byCertificate.identity);
        return done(null, true);
      }
      const code = 'clientId' in byCertificate ? CONNACK.IDENTIFIER_REJECTED : CONNACK.NOT_AUTHORIZED;
      return refuse(code, byCertificate.reason, 'certificate', login.fail(username ?? client.id, address));
    }
    void login.check({ username, password, clientId: client.id, address }).then((result) => {
      if (!result.allow) {
        const code = result.clientId ? CONNACK.IDENTIFIER_REJECTED : CONNACK_FOR[result.refusal];
        return refuse(code, result.reason, result.refusal, result.delayMs);
      }
      identities.set(client, result.identity);
      done(null, true);
    });
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
    // In place, so the session store keeps it too; aedes still echoes the requested QoS in the SUBACK.
    sub.qos = SUBSCRIPTION_QOS;
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
