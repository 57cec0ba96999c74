// Pure edits of the staff API tokens (registry/types.ts StaffToken): issue one (its clear form is
// returned once, only its hash is kept) and revoke one. Same token form as researcher tokens
// (research.ts), so one parser and one verifier serve both; a token id is unique across both lists.
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { GENERATED_SECRET_ITERATIONS, hashSecretSync } from './passwords.js';
import type { RegistryData } from './types.js';

/** Issues a staff token; returns the registry and the clear token to print once: ll_<id>_<secret>. */
export function issueStaffToken(
  data: RegistryData,
  t: { name: string; expires: Date },
): { data: RegistryData; token: string } {
  const name = t.name.trim();
  if (name.length === 0 || name.length > 100)
    throw new GatewayError('LL_INPUT_INVALID', '--name must say who holds the token (1 to 100 characters)');
  const taken = new Set([...data.tokens, ...data.staffTokens].map((x) => x.id));
  let id = randomBytes(6).toString('hex');
  while (taken.has(id)) id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  const staffToken = {
    id,
    name,
    hash: hashSecretSync(secret, GENERATED_SECRET_ITERATIONS),
    expires: t.expires.toISOString(),
    revoked: false,
  };
  return { data: { ...data, staffTokens: [...data.staffTokens, staffToken] }, token: `ll_${id}_${secret}` };
}

/** Revokes the staff token with this id; undefined when no staff token has it. */
export function revokeStaffToken(data: RegistryData, id: string): RegistryData | undefined {
  if (!data.staffTokens.some((t) => t.id === id)) return undefined;
  return { ...data, staffTokens: data.staffTokens.map((t) => (t.id === id ? { ...t, revoked: true } : t)) };
}
