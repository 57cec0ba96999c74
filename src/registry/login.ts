// The password login, one rule for every door a device or account comes in by: the embedded
// broker (broker/hooks.ts) and an external broker's auth hooks (http/broker-hooks.ts) both call
// it, and only choose how to say its answer (a CONNACK code, an HTTP body). It owns:
//   - the lookup (acl.ts findIdentity) and the connect rule (acl.ts canConnect: enabled, client
//     id = device id), re-read after the hash because the registry may change meanwhile;
//   - brute-force slowing (auth-backoff.ts): a locked username is refused without hashing;
//   - equal cost: an unknown username, or a wrong password for a cheap hash, costs a dummy hash
//     as dear as the dearest in the registry, so timing does not tell which ids exist.
// It never logs, never holds a refusal itself (the caller waits `delayMs`), and never stores a
// password.
import type { Config } from '../config/schema.js';
import { isGatewayError } from '../errors.js';
import { canConnect, findIdentity, type Identity } from './acl.js';
import { type BackoffOptions, createAuthBackoff } from './auth-backoff.js';
import { maxIterations, type PasswordVerifier, parseHash } from './passwords.js';
import type { RegistrySnapshot } from './registry.js';

/** Why a login was refused; also the label it is counted under. */
export type LoginRefusal =
  | 'missing'
  | 'backoff'
  | 'wrong-password'
  | 'unknown-user'
  | 'not-authorized'
  | 'busy'
  | 'error';

export type LoginResult =
  | { readonly allow: true; readonly identity: Identity }
  | {
      readonly allow: false;
      readonly refusal: LoginRefusal;
      readonly reason: string;
      /** How long to hold the refusal (a failed login under backoff). */
      readonly delayMs: number;
      /** Refused because of the client id alone (MQTT: identifier rejected). */
      readonly clientId?: true;
    };

export interface LoginRequest {
  readonly username: string | undefined;
  readonly password: string | Buffer | undefined;
  readonly clientId: string;
  /** The client's network address ('' when the broker does not tell it). */
  readonly address: string;
}

export const DEFAULT_LOGIN_BACKOFF: BackoffOptions = {
  usernameAfter: 5,
  addressAfter: 20,
  baseMs: 1000,
  maxMs: 30_000,
};

/** The backoff the configuration asks for (auth.*). */
export const loginBackoffOptions = (config: Config): BackoffOptions => ({
  usernameAfter: config.auth.usernameBackoffAfter,
  addressAfter: config.auth.addressBackoffAfter,
  baseMs: config.auth.backoffBaseMs,
  maxMs: config.auth.backoffMaxMs,
});

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

/**
 * Whom a check is charged to (the hashing queue's per-owner share, the per-address backoff): the
 * client's address, or, when a broker's hook does not send it, the username, so that every device
 * behind one broker does not share one address's quarter of the queue and its failure count.
 */
const ownerOf = (address: string, username: string) => address || `user:${username}`;

const refuse = (
  refusal: LoginRefusal,
  reason: string,
  delayMs = 0,
): Extract<LoginResult, { allow: false }> => ({ allow: false, refusal, reason, delayMs });

export interface PasswordLogin {
  check(req: LoginRequest): Promise<LoginResult>;
  /** Counts a failed login decided elsewhere (a refused client certificate); returns the hold. */
  fail(username: string, address: string): number;
}

export function createPasswordLogin(deps: {
  registry: { current(): RegistrySnapshot };
  verifier: PasswordVerifier;
  backoff?: BackoffOptions;
}): PasswordLogin {
  const { registry, verifier } = deps;
  const backoff = createAuthBackoff(deps.backoff ?? DEFAULT_LOGIN_BACKOFF);

  const afterHash = (ok: boolean, req: LoginRequest, username: string, known: boolean): LoginResult => {
    if (!ok) {
      const delay = backoff.fail(username, ownerOf(req.address, username));
      return known
        ? refuse('wrong-password', 'wrong password', delay)
        : refuse('unknown-user', 'unknown username', delay);
    }
    backoff.succeed(username);
    // Re-read: the registry may have changed while the hash was computed.
    const fresh = findIdentity(registry.current(), username);
    if (!fresh) return refuse('unknown-user', 'unknown username');
    const decision = canConnect(fresh, req.clientId);
    if (!decision.allow)
      return 'clientId' in decision
        ? { ...refuse('not-authorized', decision.reason), clientId: true }
        : refuse('not-authorized', decision.reason);
    return { allow: true, identity: fresh };
  };

  const check = async (req: LoginRequest): Promise<LoginResult> => {
    const { username, password } = req;
    if (!username || !password) return refuse('missing', 'username and password are required');
    const address = ownerOf(req.address, username);
    const snapshot = registry.current();
    const identity = findIdentity(snapshot, username);
    const hash = identity?.kind === 'device' ? identity.device.passwordHash : identity?.account.passwordHash;
    const locked = backoff.lockedFor(username);
    // A lock keyed by username alone let anyone who knows a device id (another vendor, or anyone
    // timing refusals) keep that device out with one wrong password per lock period. A credential
    // verified before needs no hash, so it passes the lock: guessing gains nothing from that.
    if (locked > 0 && !(hash !== undefined && verifier.isRemembered(hash, password)))
      return refuse('backoff', 'too many failed logins for this username; refused without a check', locked);
    const dummyCost = dummyIterations(snapshot);
    try {
      const ok =
        hash === undefined
          ? await verifier.verifyUnknown(password, dummyCost, address)
          : (await verifier.verify(hash, password, address)) ||
            (await padToDummyCost(verifier, hash, password, dummyCost, address));
      return afterHash(ok, req, username, identity !== undefined);
    } catch (err) {
      return isGatewayError(err) && err.code === 'LL_AUTH_BUSY'
        ? refuse('busy', err.message)
        : refuse('error', `password check failed: ${(err as Error).message}`);
    }
  };

  return { check, fail: (username, address) => backoff.fail(username, address) };
}
