// Reads and writes the registry file (lab.yaml). Parse errors name the file and line; writes are
// atomic (temporary file in the same folder, fsync, rename) with mode 0600, so the running gateway
// never reads half a file and secrets' hashes are not world-readable. Never writes a clear secret.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { stringify } from 'yaml';
import { durationPattern } from '../config/duration.js';
import { fileLine, parseYaml, validateYaml } from '../config/yaml-file.js';
import { GatewayError } from '../errors.js';
import { checkAssignments } from './assignments.js';
import { SEGMENT_PATTERN, SUBJECT_PATTERN } from './ids.js';
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
        required: ['id', 'type', 'schemaVersion', 'site', 'vendor', 'passwordHash'],
        properties: {
          id,
          type: id,
          schemaVersion: { type: 'integer', minimum: 1 },
          site: id,
          vendor: { type: 'string', minLength: 1, maxLength: 100 },
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
        },
      },
    },
    accounts: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'role', 'passwordHash'],
        properties: {
          id,
          role: { enum: ['staff'] },
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
        required: ['id', 'from', 'to', 'types', 'secret'],
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
        required: ['id', 'project', 'researcher', 'hash', 'expires'],
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
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validateRegistry = ajv.compile(REGISTRY_SCHEMA);

/** Parses registry text; throws LL_REGISTRY_PARSE naming `file:line` for any problem. */
export function parseRegistry(text: string, file: string): RegistryData {
  const doc = parseYaml(text, file, 'LL_REGISTRY_PARSE');
  if (doc.empty) return structuredClone(EMPTY_REGISTRY) as RegistryData;
  const loaded = validateYaml(doc, validateRegistry, 'LL_REGISTRY_PARSE') as unknown as Omit<
    RegistryData,
    'devices'
  > & { devices: readonly LoadedDevice[] };
  const at = (path: (string | number)[]) => fileLine(file, doc.lineOf(path));
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
  return reg;
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

export async function readRegistryFile(file: string): Promise<RegistryData> {
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
  return parseRegistry(text, file);
}

const HEADER =
  '# Living Lab Gateway device registry.\n' +
  '# Edit with the `livinglab` command; secrets are stored only as $7$ PBKDF2-SHA512 hashes.\n';

export function serialiseRegistry(data: RegistryData): string {
  const ordered = {
    version: data.version,
    sites: data.sites.map((s) => ({ id: s.id, ...(s.name ? { name: s.name } : {}) })),
    devices: data.devices.map((d) => ({
      id: d.id,
      type: d.type,
      schemaVersion: d.schemaVersion,
      site: d.site,
      vendor: d.vendor,
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
      passwordHash: d.passwordHash,
    })),
    accounts: data.accounts.map((a) => ({
      id: a.id,
      role: a.role,
      enabled: a.enabled,
      passwordHash: a.passwordHash,
    })),
    // Research sections only once there is something in them, so device-only registries stay short.
    ...(data.projects.length > 0 ? { projects: data.projects } : {}),
    ...(data.tokens.length > 0 ? { tokens: data.tokens } : {}),
  };
  return HEADER + stringify(ordered, { lineWidth: 0 });
}

/** Atomically replaces `file` with `data` (mode 0600). */
export async function writeRegistryFile(file: string, data: RegistryData): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(serialiseRegistry(data), 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
