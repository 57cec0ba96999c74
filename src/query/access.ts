// Who may read what: a bearer token → its project. 401 for a missing, malformed, unknown, wrong,
// expired or revoked token; 403 when the token belongs to another project; 503 when a secret the
// check or the export needs (the token's hash, the project's key) is missing from the secrets file:
// said plainly, never papered over with a new key.
import type { PasswordVerifier } from '../registry/passwords.js';
import { parseToken } from '../registry/research.js';
import type { Project, RegistryData } from '../registry/types.js';

export type AccessResult =
  | { ok: true; project: Project; researcher: string }
  | { ok: false; status: 401 | 403 | 503; message: string };

export async function authorise(
  data: RegistryData,
  verifier: PasswordVerifier,
  authorization: string | undefined,
  projectId: string,
  now = Date.now(),
  secretsFile = 'the secrets file',
): Promise<AccessResult> {
  const deny = (status: 401 | 403 | 503, message: string): AccessResult => ({ ok: false, status, message });
  const lost = `the secrets file is missing or incomplete; lab staff: restore ${secretsFile} from its backup`;
  const bearer = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
  if (!bearer)
    return deny(401, 'send "Authorization: Bearer <token>" with a token from `livinglab tokens issue`');
  const parsed = parseToken(bearer);
  const token = parsed ? data.tokens.find((t) => t.id === parsed.id) : undefined;
  if (token && !token.hash)
    return deny(
      503,
      `the hash of token ${token.id} is not in ${secretsFile}, so it cannot be checked: ${lost}`,
    );
  if (!parsed || !token || !(await verifier.verify(token.hash, parsed.secret)))
    return deny(401, 'unknown token');
  if (token.revoked) return deny(401, 'this token was revoked');
  if (Date.parse(token.expires) <= now) return deny(401, `this token expired on ${token.expires}`);
  if (token.project !== projectId)
    return deny(403, `this token is for project ${token.project}, not ${projectId}`);
  const project = data.projects.find((p) => p.id === projectId);
  if (!project) return deny(403, `project ${projectId} does not exist any more`);
  if (!project.secret)
    return deny(
      503,
      `project ${projectId} has no pseudonymisation secret in ${secretsFile}, so nothing is exported (a new secret would change every pseudonym of the project): ${lost}`,
    );
  return { ok: true, project, researcher: token.researcher };
}
