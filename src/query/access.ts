// Who may read what: a bearer token → its project (researcher tokens) or the staff views (staff
// tokens). 401 for a missing, malformed, unknown, wrong, expired or revoked token; 403 for a valid
// token without the right: another project's, or a researcher's token on a staff view and the
// other way round; 503 when a secret the check or the export needs (the token's hash, the
// project's key) is missing from the secrets file: said plainly, never papered over with a new key.
// Every refusal says why (`reason`, for metrics and the brute-force guard) and, once the token
// parsed, its id; never the secret.
import type { PasswordVerifier } from '../registry/passwords.js';
import { parseToken } from '../registry/research.js';
import type { Project, RegistryData } from '../registry/types.js';

const lostSecrets = (secretsFile: string) =>
  `the secrets file is missing or incomplete; lab staff: restore ${secretsFile} from its backup`;

/** Why a credential was refused; the first six are bad credentials, `forbidden` a valid one without the right. */
export type DenyReason =
  | 'missing'
  | 'malformed'
  | 'unknown'
  | 'wrong-secret'
  | 'revoked'
  | 'expired'
  | 'forbidden'
  | 'secret-missing';

export type Denied = {
  ok: false;
  status: 401 | 403 | 503;
  message: string;
  reason: DenyReason;
  tokenId?: string;
};

export type AccessResult = { ok: true; project: Project; researcher: string } | Denied;

export type StaffAccess = { ok: true; name: string; tokenId: string } | Denied;

const deny = (status: 401 | 403 | 503, reason: DenyReason, message: string, tokenId?: string): Denied => ({
  ok: false,
  status,
  reason,
  message,
  ...(tokenId ? { tokenId } : {}),
});

type Checked =
  | { ok: true; kind: 'research'; id: string; token: RegistryData['tokens'][number] }
  | { ok: true; kind: 'staff'; id: string; token: RegistryData['staffTokens'][number] }
  | Denied;

/** Finds and verifies the bearer token among researcher and staff tokens (the hash is checked first). */
async function checkBearer(
  data: RegistryData,
  verifier: PasswordVerifier,
  authorization: string | undefined,
  now: number,
  secretsFile = 'the secrets file',
): Promise<Checked> {
  if (!authorization)
    return deny(
      401,
      'missing',
      'send "Authorization: Bearer <token>" with a token from `livinglab tokens issue`',
    );
  const bearer = /^Bearer (\S+)$/.exec(authorization)?.[1];
  const parsed = bearer ? parseToken(bearer) : undefined;
  if (!parsed) return deny(401, 'malformed', 'the Authorization header is not "Bearer ll_<id>_<secret>"');
  const research = data.tokens.find((t) => t.id === parsed.id);
  const staff = research ? undefined : data.staffTokens.find((t) => t.id === parsed.id);
  const token = research ?? staff;
  if (!token) return deny(401, 'unknown', 'unknown token', parsed.id);
  if (!token.hash)
    return deny(
      503,
      'secret-missing',
      `the hash of token ${token.id} is not in ${secretsFile}, so it cannot be checked: ${lostSecrets(secretsFile)}`,
      parsed.id,
    );
  if (!(await verifier.verify(token.hash, parsed.secret)))
    return deny(401, 'wrong-secret', 'unknown token', parsed.id);
  if (token.revoked) return deny(401, 'revoked', 'this token was revoked', parsed.id);
  if (Date.parse(token.expires) <= now)
    return deny(401, 'expired', `this token expired on ${token.expires}`, parsed.id);
  return research
    ? { ok: true, kind: 'research', id: parsed.id, token: research }
    : { ok: true, kind: 'staff', id: parsed.id, token: staff as RegistryData['staffTokens'][number] };
}

export async function authorise(
  data: RegistryData,
  verifier: PasswordVerifier,
  authorization: string | undefined,
  projectId: string,
  now = Date.now(),
  secretsFile = 'the secrets file',
): Promise<AccessResult> {
  const checked = await checkBearer(data, verifier, authorization, now, secretsFile);
  if (!checked.ok) return checked;
  if (checked.kind === 'staff')
    return deny(
      403,
      'forbidden',
      'a staff token does not read research data; use a token of the project',
      checked.id,
    );
  const token = checked.token;
  if (token.project !== projectId)
    return deny(403, 'forbidden', `this token is for project ${token.project}, not ${projectId}`, checked.id);
  const project = data.projects.find((p) => p.id === projectId);
  if (!project) return deny(403, 'forbidden', `project ${projectId} does not exist any more`, checked.id);
  if (!project.secret)
    return deny(
      503,
      'secret-missing',
      `project ${projectId} has no pseudonymisation secret in ${secretsFile}, so nothing is exported (a new secret would change every pseudonym of the project): ${lostSecrets(secretsFile)}`,
      checked.id,
    );
  return { ok: true, project, researcher: token.researcher };
}

/** The staff views (device names, sites, times of activity): a staff token only. */
export async function authoriseStaff(
  data: RegistryData,
  verifier: PasswordVerifier,
  authorization: string | undefined,
  now = Date.now(),
): Promise<StaffAccess> {
  const checked = await checkBearer(data, verifier, authorization, now);
  if (!checked.ok) return checked;
  if (checked.kind !== 'staff')
    return deny(
      403,
      'forbidden',
      'a researcher token reads only its project; this view needs a staff token (`livinglab tokens issue --staff`)',
      checked.id,
    );
  return { ok: true, name: checked.token.name, tokenId: checked.id };
}
