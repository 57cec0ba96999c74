// The secrets file (lab.secrets.yaml beside lab.yaml, or `secretsFile` / LIVINGLAB_SECRETS_FILE):
// everything lab.yaml must not hold, so that lab.yaml can go under version control. Password and
// token hashes, project pseudonymisation keys (per section and id: `projects: {spo2: {secret: …}}`)
// and the audit MAC key. This module reads, writes, splits and merges; it refuses a file that group
// or others can read, and it never makes up a project key: a key that is missing stays missing
// (only `livinglab projects add` creates one), because a new key would change every pseudonym.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Ajv } from 'ajv';
import { stringify } from 'yaml';
import { parseYaml, validateYaml } from '../config/yaml-file.js';
import { GatewayError } from '../errors.js';
import { writeFileAtomic } from './atomic-write.js';

/**
 * The fields of registry entries that are secrets, in any list section whose entries have an `id`
 * (devices, accounts, projects, tokens, and any list of hashed tokens added later).
 */
export const SECRET_FIELDS: readonly string[] = ['passwordHash', 'hash', 'secret'];

/** section → entry id → field → value, as the secrets file holds them. */
export type SecretSections = Record<string, Record<string, Record<string, string>>>;

export interface Secrets {
  /** 32 random bytes (hex): the audit log's MAC key, created with the file. */
  readonly auditKey?: string;
  readonly sections: SecretSections;
}

/** Where a secret sat in a registry document: [section, index, field]. */
export type SecretPath = [string, number, string];

/** The secrets file of a registry: the configured one, or `lab.yaml` → `lab.secrets.yaml` beside it. */
export function secretsFileFor(registryFile: string, configured = ''): string {
  return configured || registryFile.replace(/(\.ya?ml)?$/, '.secrets.yaml');
}

const SECRETS_SCHEMA = {
  type: 'object',
  required: ['version'],
  properties: {
    version: { const: 1 },
    auditKey: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
  additionalProperties: {
    type: 'object',
    additionalProperties: {
      type: 'object',
      propertyNames: { enum: [...SECRET_FIELDS] },
      additionalProperties: { type: 'string', minLength: 1 },
    },
  },
} as const;
const validateSecrets = new Ajv({ allErrors: true, strict: true }).compile(SECRETS_SCHEMA);

/**
 * Reads the secrets file; undefined when it does not exist. Refuses (LL_SECRETS_PERMISSIONS) a file
 * that group or others may read, before reading a byte of it.
 */
export async function readSecretsFile(file: string): Promise<Secrets | undefined> {
  const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new GatewayError('LL_REGISTRY_PARSE', `cannot read secrets file ${file}: ${err.message}`, {
      cause: err,
    });
  });
  if (!handle) return undefined;
  try {
    const { mode } = await handle.stat();
    if ((mode & 0o077) !== 0 && process.platform !== 'win32') {
      throw new GatewayError(
        'LL_SECRETS_PERMISSIONS',
        `secrets file ${file} can be read by group or others (mode 0${(mode & 0o777).toString(8)}); it holds password hashes and pseudonymisation keys: run \`chmod 600 ${file}\` (a container secret: mount it with mode 0400)`,
      );
    }
    const doc = parseYaml(await handle.readFile('utf8'), file, 'LL_REGISTRY_PARSE');
    const {
      version: _v,
      auditKey,
      ...sections
    } = validateYaml(doc, validateSecrets, 'LL_REGISTRY_PARSE') as {
      version: 1;
      auditKey?: string;
    } & SecretSections;
    return { ...(auditKey ? { auditKey } : {}), sections };
  } finally {
    await handle.close();
  }
}

const HEADER =
  '# Living Lab Gateway secrets: password and token hashes, project pseudonymisation keys, the audit key.\n' +
  '# Never commit or share this file; keep it mode 0600 and back it up: a lost project key cannot be\n' +
  '# made again, and a new one would change every pseudonym of the project. Edited by `livinglab`.\n';

export function serialiseSecrets(secrets: Secrets): string {
  const sections = Object.fromEntries(
    Object.entries(secrets.sections).filter(([, entries]) => Object.keys(entries).length > 0),
  );
  return HEADER + stringify({ version: 1, auditKey: secrets.auditKey, ...sections }, { lineWidth: 0 });
}

/** A write refused by the file system (read-only mount, permissions), not a failure of the disk. */
export const isUnwritable = (err: unknown): boolean =>
  ['EROFS', 'EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '');

/** Writes the secrets file atomically, mode 0600, with an audit key (a new one when it has none). */
export async function writeSecretsFile(file: string, secrets: Secrets): Promise<void> {
  const auditKey = secrets.auditKey ?? randomBytes(32).toString('hex');
  await writeFileAtomic(file, serialiseSecrets({ ...secrets, auditKey }));
}

/**
 * Splits a registry document (plain values, as written to lab.yaml) into the document without its
 * secrets and the secrets. Empty values are dropped, never written: a missing secret stays missing.
 */
export function splitSecrets(doc: Record<string, unknown>): {
  plain: Record<string, unknown>;
  secrets: SecretSections;
  paths: SecretPath[];
} {
  const plain: Record<string, unknown> = {};
  const secrets: SecretSections = {};
  const paths: SecretPath[] = [];
  for (const [section, value] of Object.entries(doc)) {
    if (!Array.isArray(value)) {
      plain[section] = value;
      continue;
    }
    plain[section] = value.map((entry: unknown, index) => {
      if (!isEntry(entry)) return entry;
      const kept: Record<string, unknown> = {};
      for (const [field, v] of Object.entries(entry)) {
        if (!SECRET_FIELDS.includes(field)) kept[field] = v;
        else if (typeof v === 'string') {
          paths.push([section, index, field]);
          if (v !== '') setSecret(secrets, section, entry.id, field, v);
        } else kept[field] = v;
      }
      return kept;
    });
  }
  return { plain, secrets, paths };
}

const isEntry = (x: unknown): x is Record<string, unknown> & { id: string } =>
  typeof x === 'object' && x !== null && typeof (x as { id?: unknown }).id === 'string';

/**
 * Puts the secrets into a registry document in place. A secret that lab.yaml still holds (an
 * unmigrated registry) must be the one in the secrets file, if that has one: two different values
 * are refused (LL_SECRETS_CONFLICT), never guessed between. `where` names a path's `file:line`.
 */
export function mergeSecrets(
  doc: Record<string, unknown>,
  secrets: SecretSections,
  secretsFile: string,
  where: (path: SecretPath) => string,
): void {
  for (const [section, value] of Object.entries(doc)) {
    if (!Array.isArray(value)) continue;
    const held = secrets[section] ?? {};
    value.forEach((entry: unknown, index) => {
      if (!isEntry(entry)) return;
      for (const [field, secret] of Object.entries(held[entry.id] ?? {})) {
        const inline = entry[field];
        if (inline === undefined) entry[field] = secret;
        else if (inline !== secret) {
          throw new GatewayError(
            'LL_SECRETS_CONFLICT',
            `${where([section, index, field])}: ${section} ${entry.id} has a ${field} here and a different one in ${secretsFile}; the gateway will not guess which is right${field === 'secret' ? ' (a wrong project key changes every pseudonym)' : ''}: keep the right value and delete the other`,
          );
        }
      }
    });
  }
}

/** Secrets of `b` that `a` lacks or holds with another value. */
export function secretsNotIn(a: SecretSections, b: SecretSections): number {
  let n = 0;
  for (const [section, entries] of Object.entries(b))
    for (const [id, fields] of Object.entries(entries))
      for (const [field, v] of Object.entries(fields)) if (a[section]?.[id]?.[field] !== v) n++;
  return n;
}

/** `a` with `b` laid over it (b wins). */
export function overlaySecrets(a: SecretSections, b: SecretSections): SecretSections {
  const out: SecretSections = structuredClone(a);
  for (const [section, entries] of Object.entries(b))
    for (const [id, fields] of Object.entries(entries))
      for (const [field, v] of Object.entries(fields)) setSecret(out, section, id, field, v);
  return out;
}

function setSecret(into: SecretSections, section: string, id: string, field: string, value: string): void {
  const entries = into[section] ?? {};
  into[section] = entries;
  entries[id] = { ...entries[id], [field]: value };
}

/**
 * The audit log's MAC key (32 bytes) from the registry's secrets file. Throws LL_SECRET_MISSING when
 * the file or its key is missing: the caller must not make a new key, which would break the chain.
 */
export async function loadAuditKey(registryFile: string, secretsFile = ''): Promise<Buffer> {
  const file = secretsFileFor(registryFile, secretsFile);
  const secrets = await readSecretsFile(file);
  if (!secrets?.auditKey) {
    throw new GatewayError(
      'LL_SECRET_MISSING',
      `${secrets ? `secrets file ${file} has no auditKey` : `secrets file ${file} does not exist`}: restore it from its backup (\`livinglab registry migrate\` creates a new file, with a new audit key, for a registry without one)`,
    );
  }
  return Buffer.from(secrets.auditKey, 'hex');
}
