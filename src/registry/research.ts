// Pure edits of the research part of the registry: projects, consents and researcher tokens.
// Secrets (project keys, tokens) are generated here; tokens are stored only as hashes.
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { SEGMENT_RE, SUBJECT_RE } from './ids.js';
import { GENERATED_SECRET_ITERATIONS, hashSecretSync } from './passwords.js';
import { revokeStaffToken } from './staff-tokens.js';
import type { Consent, Project, RegistryData } from './types.js';

const DATE = /^\d{4}-\d\d-\d\d$/;
const validDate = (d: string) => DATE.test(d) && !Number.isNaN(Date.parse(`${d}T00:00:00Z`));

function findProject(data: RegistryData, id: string): Project {
  const p = data.projects.find((x) => x.id === id);
  if (!p) throw new GatewayError('LL_REGISTRY_NOT_FOUND', `project ${id} is not in the registry`);
  return p;
}

export function addProject(
  data: RegistryData,
  p: { id: string; from: string; to: string; types: string[]; fields?: string[] },
): RegistryData {
  if (!SEGMENT_RE.test(p.id))
    throw new GatewayError('LL_INPUT_INVALID', `project id "${p.id}" must be a-z, 0-9 and "-"`);
  if (data.projects.some((x) => x.id === p.id))
    throw new GatewayError('LL_REGISTRY_CONFLICT', `project ${p.id} already exists`);
  if (!validDate(p.from) || !validDate(p.to))
    throw new GatewayError('LL_INPUT_INVALID', '--from and --to must be dates like 2026-01-31');
  if (p.from > p.to) throw new GatewayError('LL_INPUT_INVALID', `--from ${p.from} is after --to ${p.to}`);
  if (p.types.length === 0)
    throw new GatewayError('LL_INPUT_INVALID', 'a project needs at least one device type (--types)');
  const project: Project = {
    id: p.id,
    from: p.from,
    to: p.to,
    types: [...new Set(p.types)],
    fields: [...new Set(p.fields ?? [])],
    secret: randomBytes(32).toString('hex'),
    consents: [],
  };
  return { ...data, projects: [...data.projects, project] };
}

/** Records consent from `on` (default today), or its withdrawal. */
export function setConsent(
  data: RegistryData,
  projectId: string,
  subject: string,
  opts: { withdraw?: boolean; on: string },
): RegistryData {
  const project = findProject(data, projectId);
  if (!validDate(opts.on))
    throw new GatewayError('LL_INPUT_INVALID', `--date "${opts.on}" must be a date like 2026-01-31`);
  if (!SUBJECT_RE.test(subject))
    throw new GatewayError('LL_INPUT_INVALID', `subject "${subject}" must be a participant code`);
  const existing = project.consents.find((c) => c.subject === subject);
  let consents: Consent[];
  if (opts.withdraw) {
    if (!existing || existing.withdrawn)
      throw new GatewayError(
        'LL_REGISTRY_NOT_FOUND',
        `subject ${subject} has no active consent in project ${projectId}`,
      );
    consents = project.consents.map((c) => (c.subject === subject ? { ...c, withdrawn: opts.on } : c));
  } else {
    if (existing && !existing.withdrawn)
      throw new GatewayError(
        'LL_REGISTRY_CONFLICT',
        `subject ${subject} already consented to project ${projectId}`,
      );
    // A renewed consent after a withdrawal starts afresh.
    consents = [...project.consents.filter((c) => c.subject !== subject), { subject, from: opts.on }];
  }
  return { ...data, projects: data.projects.map((p) => (p.id === projectId ? { ...p, consents } : p)) };
}

/** Issues a token; returns the registry and the clear token to print once: ll_<id>_<secret>. */
export function issueToken(
  data: RegistryData,
  t: { project: string; researcher: string; expires: Date },
): { data: RegistryData; token: string } {
  findProject(data, t.project);
  const taken = new Set(data.staffTokens.map((x) => x.id));
  let id = randomBytes(6).toString('hex');
  while (taken.has(id)) id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  const token = `ll_${id}_${secret}`;
  return {
    data: {
      ...data,
      tokens: [
        ...data.tokens,
        {
          id,
          project: t.project,
          researcher: t.researcher,
          hash: hashSecretSync(secret, GENERATED_SECRET_ITERATIONS),
          expires: t.expires.toISOString(),
          revoked: false,
        },
      ],
    },
    token,
  };
}

/** Revokes a researcher or staff token, given by its id or as the whole token. */
export function revokeToken(data: RegistryData, id: string): RegistryData {
  const bare = id.replace(/^ll_([a-z0-9]+)_.*$/, '$1');
  const staff = revokeStaffToken(data, bare);
  if (staff) return staff;
  if (!data.tokens.some((t) => t.id === bare))
    throw new GatewayError('LL_REGISTRY_NOT_FOUND', `token ${bare} is not in the registry`);
  return { ...data, tokens: data.tokens.map((t) => (t.id === bare ? { ...t, revoked: true } : t)) };
}

/** Splits a presented token into its id and secret; undefined when it is not one of ours. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = /^ll_([a-z0-9]{8,32})_([A-Za-z0-9_-]{16,})$/.exec(token);
  return m ? { id: m[1] as string, secret: m[2] as string } : undefined;
}
