// Reads and writes the registry: lab.yaml (what lab staff may keep under version control) and its
// secrets file (secrets-file.ts), merged into one RegistryData, so nothing above this layer knows
// there are two files. Parse errors name the file and line; each file is replaced atomically (mode
// 0600). Writes go secrets first, lab.yaml second, pruning the secrets file last, so a crash at any
// point leaves every entry of either lab.yaml with its hash. Never writes a clear secret, and never
// writes a secret into lab.yaml.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import { stringify } from 'yaml';
import { durationPattern } from '../config/duration.js';
import { fileLine, parseYaml, validateYaml } from '../config/yaml-file.js';
import { GatewayError } from '../errors.js';
import { checkAssignments } from './assignments.js';
import { writeFileAtomic } from './atomic-write.js';
import { FINGERPRINT_PATTERN } from './certificate-rule.js';
import { SEGMENT_PATTERN, SUBJECT_PATTERN } from './ids.js';
import {
  isUnwritable,
  mergeSecrets,
  overlaySecrets,
  readSecretsFile,
  type Secrets,
  secretsFileFor,
  secretsNotIn,
  splitSecrets,
  writeSecretsFile,
} from './secrets-file.js';
import { type Assignment, type Device, EMPTY_REGISTRY, type RegistryData } from './types.js';

const id = { type: 'string', pattern: SEGMENT_PATTERN };
const hash = { type: 'string', pattern: '^\\$' };
const DATE = '^\\d{4}-\\d\\d-\\d\\d$';
const SUBJECT = { type: 'string', pattern: SUBJECT_PATTERN };

const REGISTRY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { const: 1 },
    sites: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: { id, name: { type: 'string' } },
      },
    },
    devices: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        // Secrets are not required: one missing from the secrets file is read as '' (see withSecretDefaults).
        required: ['id', 'type', 'schemaVersion', 'site', 'vendor'],
        properties: {
          id,
          type: id,
          schemaVersion: { type: 'integer', minimum: 1 },
          site: id,
          vendor: { type: 'string', minLength: 1, maxLength: 100 },
          // No default: a device without the field is one the simulator-device migration may still
          // mark (provenance-migrate.ts); everything else reads it as real.
          provenance: { enum: ['real', 'simulated'] },
          // Legacy form, read as one assignment with no start and no end (README "Device registry").
          subject: SUBJECT,
          assignments: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['subject'],
              properties: { subject: SUBJECT, from: { type: 'string' }, to: { type: 'string' } },
            },
          },
          interval: { type: 'string', pattern: durationPattern({ positive: true }) },
          enabled: { type: 'boolean', default: true },
          passwordHash: hash,
          certificate: {
            oneOf: [
              {
                type: 'object',
                additionalProperties: false,
                required: ['fingerprint256'],
                properties: { fingerprint256: { type: 'string', pattern: FINGERPRINT_PATTERN } },
              },
              {
                type: 'object',
                additionalProperties: false,
                required: ['issuer'],
                properties: { issuer: { const: 'lab-ca' } },
              },
            ],
          },
        },
      },
    },
    accounts: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'role'],
        properties: {
          id,
          role: { enum: ['staff', 'gateway'] },
          enabled: { type: 'boolean', default: true },
          passwordHash: hash,
        },
      },
    },
    projects: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'from', 'to', 'types'],
        properties: {
          id,
          from: { type: 'string', pattern: DATE },
          to: { type: 'string', pattern: DATE },
          types: { type: 'array', minItems: 1, items: id },
          fields: {
            type: 'array',
            default: [],
            items: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_]{0,63}$' },
          },
          secret: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          consents: {
            type: 'array',
            default: [],
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['subject', 'from'],
              properties: {
                subject: SUBJECT,
                from: { type: 'string', pattern: DATE },
                withdrawn: { type: 'string', pattern: DATE },
              },
            },
          },
        },
      },
    },
    tokens: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'project', 'researcher', 'expires'],
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9]{8,32}$' },
          project: id,
          researcher: { type: 'string', minLength: 1, maxLength: 100 },
          hash,
          expires: { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT' },
          revoked: { type: 'boolean', default: false },
        },
      },
    },
    staffTokens: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'name', 'hash', 'expires'],
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9]{8,32}$' },
          name: { type: 'string', minLength: 1, maxLength: 100 },
          hash,
          expires: { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT' },
          revoked: { type: 'boolean', default: false },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validateRegistry = ajv.compile(REGISTRY_SCHEMA);

/** The secrets file's content (undefined: there is none) and its path, for messages. */
export interface SecretsSource {
  readonly secrets: Secrets | undefined;
  readonly file: string;
}

/**
 * Parses registry text, with the secrets file's secrets merged in (an older lab.yaml may still hold
 * them itself); throws LL_REGISTRY_PARSE naming `file:line` for any problem. A secret found in
 * neither is '' (missingSecrets lists them): such a device cannot log in and such a project cannot
 * be exported.
 */
export function parseRegistry(text: string, file: string, source?: SecretsSource): RegistryData {
  const doc = parseYaml(text, file, 'LL_REGISTRY_PARSE');
  if (doc.empty) return structuredClone(EMPTY_REGISTRY) as RegistryData;
  const at = (path: (string | number)[]) => fileLine(file, doc.lineOf(path));
  if (source?.secrets) mergeSecrets(doc.data, source.secrets.sections, source.file, at);
  const loaded = withSecretDefaults(validateYaml(doc, validateRegistry, 'LL_REGISTRY_PARSE'));
  const reg: RegistryData = { ...loaded, devices: toAssignedDevices(loaded.devices, at) };
  checkConsents(reg, at);
  const seen = new Map<string, string>();
  const dup = (kind: string, key: string, index: number) => {
    const prev = seen.get(key);
    if (prev) {
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at([kind, index])}: ${kind} id "${key}" is already used by ${prev}`,
      );
    }
    seen.set(key, `${kind.replace(/s$/, '')} ${key}`);
  };
  reg.devices.forEach((d, i) => {
    dup('devices', d.id, i);
  });
  reg.accounts.forEach((a, i) => {
    dup('accounts', a.id, i);
  });
  const sites = new Set(reg.sites.map((s) => s.id));
  reg.devices.forEach((d, i) => {
    if (!sites.has(d.site)) {
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['devices', i, 'site'])}: device ${d.id} names site "${d.site}", which is not under sites`,
      );
    }
  });
  const projects = new Set(reg.projects.map((p) => p.id));
  reg.tokens.forEach((t, i) => {
    if (!projects.has(t.project)) {
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['tokens', i, 'project'])}: token ${t.id} names project "${t.project}", which is not under projects`,
      );
    }
  });
  checkTokenIds(reg, at);
  return reg;
}

type Loaded = Omit<RegistryData, 'devices'> & { devices: readonly LoadedDevice[] };

/** '' for each secret the files did not have, so the in-memory shape stays the same. */
function withSecretDefaults(valid: unknown): Loaded {
  type Partial = { passwordHash?: string; secret?: string; hash?: string };
  const raw = valid as Record<'devices' | 'accounts' | 'projects' | 'tokens' | 'staffTokens', Partial[]>;
  const fill = (list: Partial[], field: keyof Partial) =>
    list.map((x) => ({ ...x, [field]: x[field] ?? '' }));
  return {
    ...(valid as Loaded),
    devices: fill(raw.devices, 'passwordHash') as unknown as LoadedDevice[],
    accounts: fill(raw.accounts, 'passwordHash') as unknown as Loaded['accounts'],
    projects: fill(raw.projects, 'secret') as unknown as Loaded['projects'],
    tokens: fill(raw.tokens, 'hash') as unknown as Loaded['tokens'],
    staffTokens: fill(raw.staffTokens ?? [], 'hash') as unknown as Loaded['staffTokens'],
  };
}

/** Ids of entries whose secret is in neither file: they cannot log in, or cannot be exported. */
export function missingSecrets(data: RegistryData): {
  devices: string[];
  accounts: string[];
  projects: string[];
  tokens: string[];
  staffTokens: string[];
} {
  return {
    devices: data.devices.filter((d) => !d.passwordHash).map((d) => d.id),
    accounts: data.accounts.filter((a) => !a.passwordHash).map((a) => a.id),
    projects: data.projects.filter((p) => !p.secret).map((p) => p.id),
    tokens: data.tokens.filter((t) => !t.hash).map((t) => t.id),
    staffTokens: data.staffTokens.filter((t) => !t.hash).map((t) => t.id),
  };
}

/** A token id names one token: a staff token and a researcher token sharing it would be ambiguous. */
function checkTokenIds(reg: RegistryData, at: (path: (string | number)[]) => string): void {
  const research = new Set(reg.tokens.map((t) => t.id));
  const seen = new Set<string>();
  reg.staffTokens.forEach((t, i) => {
    if (research.has(t.id) || seen.has(t.id))
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['staffTokens', i, 'id'])}: token id "${t.id}" is used twice; revoke one and issue a new token`,
      );
    seen.add(t.id);
  });
}

type LoadedDevice = Omit<Device, 'assignments'> & { subject?: string; assignments?: readonly Assignment[] };

/** Devices as the file has them to Devices with assignments; refuses overlapping periods. */
function toAssignedDevices(
  loaded: readonly LoadedDevice[],
  at: (path: (string | number)[]) => string,
): Device[] {
  return loaded.map((raw, i) => {
    const { subject, assignments, ...rest } = raw;
    if (subject !== undefined && assignments !== undefined) {
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['devices', i, 'subject'])}: device ${raw.id} has both subject and assignments; move the subject into assignments`,
      );
    }
    const list = assignments ?? (subject === undefined ? [] : [{ subject }]);
    const problem = checkAssignments(list);
    if (problem) {
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['devices', i, 'assignments', problem.index])}: device ${raw.id}: ${problem.message}`,
      );
    }
    return { ...rest, assignments: list };
  });
}

/**
 * One consent line per subject and project: a second line (a copy, or an active line beside a
 * withdrawn one) would let a withdrawn subject's readings out again (issue 13 #6). A renewal after a
 * withdrawal replaces the withdrawn line, as `livinglab projects consent` does.
 */
function checkConsents(reg: RegistryData, at: (path: (string | number)[]) => string): void {
  reg.projects.forEach((p, i) => {
    const first = new Map<string, number>();
    p.consents.forEach((c, j) => {
      const earlier = first.get(c.subject);
      if (earlier === undefined) {
        first.set(c.subject, j);
        return;
      }
      throw new GatewayError(
        'LL_REGISTRY_PARSE',
        `${at(['projects', i, 'consents', j])}: project ${p.id} has a second consent line for subject ${c.subject} (the first is at ${at(['projects', i, 'consents', earlier])}); keep one line per subject and project: a renewed consent replaces the withdrawn line`,
      );
    });
  });
}

/**
 * Reads lab.yaml and its secrets file (`secretsFile`, default beside it) into one RegistryData.
 * A missing secrets file reads as one without secrets (missingSecrets says what that costs).
 */
export async function readRegistryFile(file: string, secretsFile = ''): Promise<RegistryData> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new GatewayError(
        'LL_REGISTRY_NOT_FOUND',
        `registry file ${file} does not exist; create it with \`livinglab devices add\` or pass --registry FILE`,
        { cause: err },
      );
    }
    throw new GatewayError('LL_REGISTRY_PARSE', `cannot read registry ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const secretsPath = secretsFileFor(file, secretsFile);
  return parseRegistry(text, file, { secrets: await readSecretsFile(secretsPath), file: secretsPath });
}

const HEADER =
  '# Living Lab Gateway device registry. Edit with the `livinglab` command.\n' +
  '# It holds no secret: password and token hashes and project keys are in the secrets file beside it\n' +
  '# (lab.secrets.yaml), which must never be committed.\n';

/** The registry as lab.yaml lays it out, secrets included (writeRegistryFile splits them off). */
function toDocument(data: RegistryData): Record<string, unknown> {
  // '' marks a secret that is missing: it is left out, never written as a value.
  const secret = <K extends string>(key: K, v: string) => (v ? { [key]: v } : {});
  return {
    version: data.version,
    sites: data.sites.map((s) => ({ id: s.id, ...(s.name ? { name: s.name } : {}) })),
    devices: data.devices.map((d) => ({
      id: d.id,
      type: d.type,
      schemaVersion: d.schemaVersion,
      site: d.site,
      vendor: d.vendor,
      ...(d.provenance ? { provenance: d.provenance } : {}),
      ...(d.assignments.length > 0
        ? {
            assignments: d.assignments.map((a) => ({
              subject: a.subject,
              ...(a.from ? { from: a.from } : {}),
              ...(a.to ? { to: a.to } : {}),
            })),
          }
        : {}),
      ...(d.interval ? { interval: d.interval } : {}),
      enabled: d.enabled,
      ...secret('passwordHash', d.passwordHash),
      ...(d.certificate ? { certificate: d.certificate } : {}),
    })),
    accounts: data.accounts.map((a) => ({
      id: a.id,
      role: a.role,
      enabled: a.enabled,
      ...secret('passwordHash', a.passwordHash),
    })),
    // Research sections only once there is something in them, so device-only registries stay short.
    ...(data.projects.length > 0
      ? { projects: data.projects.map(({ secret: s, ...p }) => ({ ...p, ...secret('secret', s) })) }
      : {}),
    ...(data.tokens.length > 0
      ? { tokens: data.tokens.map(({ hash: h, ...t }) => ({ ...t, ...secret('hash', h) })) }
      : {}),
    ...(data.staffTokens.length > 0
      ? { staffTokens: data.staffTokens.map(({ hash: h, ...t }) => ({ ...t, ...secret('hash', h) })) }
      : {}),
  };
}

/**
 * The registry in one document, secrets inline: the format of older registries, still read (and
 * migrated). writeRegistryFile never writes it.
 */
export function serialiseRegistry(data: RegistryData): string {
  return HEADER + stringify(toDocument(data), { lineWidth: 0 });
}

/** One file written by writeRegistryFile, in order. */
export type RegistryWrite =
  | { readonly to: 'secrets'; readonly secrets: Secrets }
  | { readonly to: 'registry'; readonly text: string };

/**
 * The writes that replace a registry whose secrets file holds `old` by `data`, in order:
 * (1) the secrets file with the new secrets laid over the old ones, (2) lab.yaml, (3) the secrets
 * file pruned to the new registry's secrets. After (1) the old lab.yaml finds every hash it needs
 * (a new password is in force already); after (2) only unused entries remain. A step that would
 * change nothing is left out. The audit key is kept, or made once when the file has none.
 */
export function planRegistryWrite(old: Secrets | undefined, data: RegistryData): RegistryWrite[] {
  const { plain, secrets } = splitSecrets(toDocument(data));
  const union = overlaySecrets(old?.sections ?? {}, secrets);
  const auditKey = old?.auditKey ?? randomBytes(32).toString('hex');
  const steps: RegistryWrite[] = [];
  if (!old?.auditKey || secretsNotIn(old.sections, union) > 0)
    steps.push({ to: 'secrets', secrets: { auditKey, sections: union } });
  steps.push({ to: 'registry', text: HEADER + stringify(plain, { lineWidth: 0 }) });
  if (secretsNotIn(secrets, union) > 0)
    steps.push({ to: 'secrets', secrets: { auditKey, sections: secrets } });
  return steps;
}

/**
 * Writes the registry: its secrets to the secrets file, the rest to `file`, each atomically (0600),
 * in the order planRegistryWrite gives. Refuses a secrets file that group or others can read.
 */
export async function writeRegistryFile(file: string, data: RegistryData, secretsFile = ''): Promise<void> {
  const secretsPath = secretsFileFor(file, secretsFile);
  for (const step of planRegistryWrite(await readSecretsFile(secretsPath), data)) {
    if (step.to === 'registry') await writeFileAtomic(file, step.text);
    else
      await writeSecretsFile(secretsPath, step.secrets).catch((err: unknown) => {
        if (!isUnwritable(err)) throw err;
        throw new GatewayError(
          'LL_SECRETS_READ_ONLY',
          `cannot write the secrets file ${secretsPath} (${(err as Error).message}); registry edits write hashes and keys there: edit the registry where its secrets file is writable, then install both files`,
          { cause: err },
        );
      });
  }
}
