// Password and token hashes in the PBKDF2-SHA512 format of mosquitto_passwd:
// `$7$<iterations>$<salt base64>$<hash base64>`. Verification accepts any iteration count and salt
// length (2.0 writes 101 iterations and 12-byte salts, 2.1 writes 1,000 and 64 bytes), runs the
// hash off the event loop, compares in constant time, and remembers successful checks so that a
// reconnect storm of thousands of devices does not cost thousands of slow hashes. An unknown user
// costs a dummy hash of the same kind, so how long a refusal takes does not tell which ids exist.
// Never logs or stores a clear-text secret.
import { createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { HashFn } from './hash-pool.js';

/** For secrets people choose (staff passwords, --password-stdin): OWASP 2023 figure for PBKDF2-SHA512. */
export const HUMAN_SECRET_ITERATIONS = 210_000;
/**
 * For secrets we generate (128 random bits): brute force is out of reach whatever the cost, so the
 * cost only needs to match mosquitto_passwd 2.1. Keeps first connects of a 10,000-device fleet cheap.
 */
export const GENERATED_SECRET_ITERATIONS = 1_000;

/**
 * What mosquitto_passwd 2.0 writes, and the only salt length Mosquitto 2.0 reads: it drops any other
 * entry of a password_file ("Unable to decode password salt ... removing entry"), and
 * `livinglab broker mosquitto` hands it our hashes as they are. 96 random bits: no two alike.
 */
export const MOSQUITTO_SALT_BYTES = 12;
const SALT_BYTES = MOSQUITTO_SALT_BYTES;
const KEY_BYTES = 64;
const MAX_ITERATIONS = 10_000_000;

export interface ParsedHash {
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses a `$7$` hash; returns a reason string when it is not one we can verify. */
export function parseHash(text: string): ParsedHash | string {
  if (text.startsWith('$argon2')) {
    return 'argon2id hashes (mosquitto_passwd 2.1 default) cannot be verified; set a new password with `livinglab devices passwd`';
  }
  if (text.startsWith('$6$')) return 'SHA512 ($6$) hashes are too weak to accept; set a new password';
  const parts = text.split('$');
  if (parts.length !== 5 || parts[0] !== '' || parts[1] !== '7') return 'not a $7$ PBKDF2-SHA512 hash';
  const iterations = Number(parts[2]);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    return `iteration count "${parts[2]}" is not a whole number from 1 to ${MAX_ITERATIONS}`;
  }
  const salt = Buffer.from(parts[3] as string, 'base64');
  const hash = Buffer.from(parts[4] as string, 'base64');
  if (salt.length === 0 || hash.length !== KEY_BYTES)
    return 'salt or hash is not valid base64 of the right length';
  return { iterations, salt, hash };
}

export function hashSecretSync(secret: string, iterations: number): string {
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(secret, salt, iterations, KEY_BYTES, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** A random secret of 128 bits, URL-safe, to print once. */
export function generateSecret(): string {
  return randomBytes(16).toString('base64url');
}

export interface PasswordVerifier {
  /** Resolves true when `secret` matches `encoded`; false for a mismatch or an unusable hash. */
  verify(encoded: string, secret: string | Buffer, owner?: string): Promise<boolean>;
  /**
   * For a username that does not exist: hashes `secret` at `iterations` like a real check would,
   * and resolves false. Same work as a wrong password for a real user of that cost.
   */
  verifyUnknown(secret: string | Buffer, iterations: number, owner?: string): Promise<false>;
  /** True when this exact credential was verified before (no hashing: a keyed lookup). */
  isRemembered(encoded: string, secret: string | Buffer): boolean;
  readonly cacheSize: number;
  /** Hashes computed for real checks, and dummy hashes for unknown users. */
  readonly stats: { readonly hashes: number; readonly dummyHashes: number };
}

/** crypto.pbkdf2 on libuv's thread pool: for the CLI and HTTP tokens; the broker uses hash-pool.ts. */
const hashOnLibuv: HashFn = (secret, salt, iterations, keylen) =>
  new Promise((resolve, reject) => {
    pbkdf2(secret, salt, iterations, keylen, 'sha512', (err, out) => (err ? reject(err) : resolve(out)));
  });

/** The highest iteration count among `hashes` (the cost a dummy check must match), or `fallback`. */
export function maxIterations(hashes: Iterable<string>, fallback = HUMAN_SECRET_ITERATIONS): number {
  let max = 0;
  for (const h of hashes) {
    const parsed = parseHash(h);
    if (typeof parsed !== 'string' && parsed.iterations > max) max = parsed.iterations;
  }
  return max || fallback;
}

/**
 * A verifier with a bounded memory of successful checks (keyed by an HMAC with a per-process key).
 * Concurrent checks of the same credential share one hash (a reconnect storm of a fleet sharing a
 * password must not fill the hashing queue). `hash` errors (LL_AUTH_BUSY) reject the promise.
 */
export function createPasswordVerifier(
  opts: { cacheEntries?: number; hash?: HashFn } = {},
): PasswordVerifier {
  const maxEntries = opts.cacheEntries ?? 50_000;
  const hash = opts.hash ?? hashOnLibuv;
  const cacheKey = randomBytes(32);
  const dummySalt = randomBytes(SALT_BYTES);
  const verified = new Set<string>();
  const inFlight = new Map<string, Promise<boolean>>();
  const stats = { hashes: 0, dummyHashes: 0 };
  const keyOf = (encoded: string, secret: string | Buffer) =>
    createHmac('sha256', cacheKey).update(encoded).update('\0').update(secret).digest('base64');

  const check = async (key: string, encoded: string, secret: string | Buffer, owner?: string) => {
    const parsed = parseHash(encoded);
    if (typeof parsed === 'string') return false;
    stats.hashes++;
    const derived = await hash(secret, parsed.salt, parsed.iterations, parsed.hash.length, owner);
    if (!timingSafeEqual(derived, parsed.hash)) return false;
    if (verified.size >= maxEntries) {
      const oldest = verified.values().next().value;
      if (oldest !== undefined) verified.delete(oldest);
    }
    verified.add(key);
    return true;
  };

  return {
    get cacheSize() {
      return verified.size;
    },
    stats,
    verify(encoded, secret, owner) {
      const key = keyOf(encoded, secret);
      if (verified.has(key)) return Promise.resolve(true);
      const running = inFlight.get(key);
      if (running) return running;
      const p = check(key, encoded, secret, owner).finally(() => inFlight.delete(key));
      inFlight.set(key, p);
      return p;
    },
    isRemembered(encoded, secret) {
      return verified.has(keyOf(encoded, secret));
    },
    async verifyUnknown(secret, iterations, owner) {
      stats.dummyHashes++;
      const derived = await hash(secret, dummySalt, iterations, KEY_BYTES, owner);
      // Compared like a real check, against bytes no secret can match.
      timingSafeEqual(derived, Buffer.alloc(KEY_BYTES));
      return false;
    },
  };
}

export interface ImportedCredential {
  username: string;
  hash: string;
}

export interface MosquittoImport {
  credentials: ImportedCredential[];
  refused: { line: number; username: string; reason: string }[];
}

/** Reads a mosquitto_passwd file; unusable lines are refused with their line number, the rest kept. */
export function parseMosquittoPasswordFile(text: string, fileName: string): MosquittoImport {
  const out: MosquittoImport = { credentials: [], refused: [] };
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      out.refused.push({
        line: i + 1,
        username: '',
        reason: `${fileName}:${i + 1}: expected "username:hash"`,
      });
      return;
    }
    const username = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const parsed = parseHash(hash);
    if (typeof parsed === 'string') out.refused.push({ line: i + 1, username, reason: parsed });
    else out.credentials.push({ username, hash });
  });
  return out;
}

export function assertUsableHash(hash: string, where: string): void {
  const parsed = parseHash(hash);
  if (typeof parsed === 'string') throw new GatewayError('LL_PASSWORD_FORMAT', `${where}: ${parsed}`);
}
