// Who may read what: a bearer token → its project. 401 for a missing, malformed, unknown, wrong,
// expired or revoked token; 403 when the token belongs to another project.
import type { PasswordVerifier } from '../registry/passwords.js';
import { parseToken } from '../registry/research.js';
import type { Project, RegistryData } from '../registry/types.js';

export type AccessResult =
  | { ok: true; project: Project; researcher: string }
  | { ok: false; status: 401 | 403; message: string };

export async function authorise(
  data: RegistryData,
  verifier: PasswordVerifier,
  authorization: string | undefined,
  projectId: string,
  now = Date.now(),
): Promise<AccessResult> {
  const deny = (status: 401 | 403, message: string): AccessResult => ({ ok: false, status, message });
  const bearer = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
  if (!bearer)
    return deny(401, 'send "Authorization: Bearer <token>" with a token from `livinglab tokens issue`');
  const parsed = parseToken(bearer);
  const token = parsed ? data.tokens.find((t) => t.id === parsed.id) : undefined;
  if (!parsed || !token || !(await verifier.verify(token.hash, parsed.secret)))
    return deny(401, 'unknown token');
  if (token.revoked) return deny(401, 'this token was revoked');
  if (Date.parse(token.expires) <= now) return deny(401, `this token expired on ${token.expires}`);
  if (token.project !== projectId)
    return deny(403, `this token is for project ${token.project}, not ${projectId}`);
  const project = data.projects.find((p) => p.id === projectId);
  if (!project) return deny(403, `project ${projectId} does not exist any more`);
  return { ok: true, project, researcher: token.researcher };
}
