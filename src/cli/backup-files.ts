// What `livinglab backup` copies and `livinglab restore` puts back, and the manifest that ties them
// together. Backup is a reader beside a running gateway: it never takes the data folder's lock
// (storage/data-lock.ts) and never writes there, except the audit lock file for the moment it
// copies the audit log and its head, so the two match; likewise it holds the registry's edit lock
// (beside lab.yaml) while it reads the registry and its secrets file. Restore writes only into an empty data
// folder and registry location, and only files whose size and SHA-256 match the manifest.
//
// Layout of a backup folder:
//   manifest.json              files (path, size, sha256, mode), gateway version, time
//   registry/registry.yaml     the registry (lab.yaml)
//   registry/secrets.yaml      its secrets file (lab.secrets.yaml)
//   registry/audit-head.json   the audit head (lab.audit-head.json)
//   data/…                     the data folder: audit log, rejects and events logs, job and
//                              liveness state, reports, spool (checkpoint first, then segments)
//   influx/…                   InfluxDB's portable backup (--influx)
import { createHash } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { resolveDataPaths } from '../config/data-paths.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { auditHeadFile } from '../query/audit.js';
import { withLock } from '../query/audit-lock.js';
import { registryLockFile } from '../registry/edit-lock.js';
import { withLockFile } from '../registry/lock-file.js';
import { secretsFileFor } from '../registry/secrets-file.js';
import { readDataFile, snapshotSpool } from '../storage/spool/snapshot.js';

export const MANIFEST = 'manifest.json';

export interface ManifestFile {
  /** Relative to the backup folder, with '/'. */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** Permission bits of the original (0600 stays 0600). */
  readonly mode: number;
}

export interface Manifest {
  readonly format: 1;
  readonly gatewayVersion: string;
  readonly createdAt: string;
  readonly influx: boolean;
  readonly files: ManifestFile[];
}

/** Where the registry-side files of a configuration are, by their name in a backup. */
export function registryFiles(config: Config): Record<string, string> {
  return {
    'registry/registry.yaml': config.registry,
    'registry/secrets.yaml': secretsFileFor(config.registry, config.secretsFile),
    'registry/audit-head.json': auditHeadFile(config.registry),
  };
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Writes a new file (never over an existing one) with `mode`, whatever the umask, and fsyncs it. */
export async function writeNew(file: string, data: Buffer, mode: number): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const h = await open(file, 'wx', mode);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await chmod(file, mode);
}

/** Collects the files of one backup into its folder, each with its manifest line. */
export function createBackupWriter(out: string) {
  const files: ManifestFile[] = [];
  return {
    files,
    async add(path: string, data: Buffer, mode: number): Promise<void> {
      await writeNew(join(out, path), data, mode);
      files.push({ path, size: data.length, sha256: sha256(data), mode });
    },
    /** Lists a file another program (influxd backup) wrote into the backup folder. */
    async note(path: string): Promise<void> {
      const [data, s] = await Promise.all([readFile(join(out, path)), stat(join(out, path))]);
      files.push({ path, size: data.length, sha256: sha256(data), mode: s.mode & 0o777 });
    },
  };
}
export type BackupWriter = ReturnType<typeof createBackupWriter>;

type Read = { data: Buffer; mode: number } | undefined;

/** Reads a file and its mode; undefined when it does not exist. */
async function readWithMode(file: string): Promise<Read> {
  try {
    const [data, s] = await Promise.all([readFile(file), stat(file)]);
    return { data, mode: s.mode & 0o777 };
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/**
 * The registry and its secrets file as one consistent pair, read under the registry's edit lock
 * (registry/edit-lock.ts): an edit writes the secrets file and then the registry, and reading
 * between its two writes would pair a new device's secret with a registry that lacks it, or the
 * reverse. Waits up to `waitMs` for an edit in progress; the backup fails rather than copy a pair
 * it cannot vouch for.
 */
export async function copyRegistry(config: Config, w: BackupWriter, waitMs: number): Promise<void> {
  const secretsFile = secretsFileFor(config.registry, config.secretsFile);
  const lockFile = await registryLockFile(config.registry);
  const [registry, secrets] = await withLockFile(
    lockFile,
    () => Promise.all([readWithMode(config.registry), readWithMode(secretsFile)]),
    {
      timeoutMs: waitMs,
      locked: (holder) =>
        new GatewayError(
          'LL_BACKUP_FAILED',
          `the registry ${config.registry} has been edited by another process (${holder}; lock ${lockFile}) for more than ${waitMs / 1000} s, and a backup never copies a registry in the middle of an edit: this backup is not complete (it has no ${MANIFEST}); wait for the edit to finish and take it again into an empty folder, or, if that process is no longer running, delete ${lockFile}`,
        ),
    },
  );
  if (!registry)
    throw new GatewayError(
      'LL_BACKUP_FAILED',
      `the registry ${config.registry} does not exist: check --registry (or --config)`,
    );
  await w.add('registry/registry.yaml', registry.data, registry.mode);
  if (secrets) await w.add('registry/secrets.yaml', secrets.data, secrets.mode);
}

/** The audit log and its head under the audit lock: no append falls between the two reads. */
export async function copyAudit(config: Config, w: BackupWriter): Promise<void> {
  const log = resolveDataPaths(config.dataDir).auditLog;
  const head = registryFiles(config)['registry/audit-head.json'] as string;
  await withLock(`${log}.lock`, async () => {
    const [l, h] = await Promise.all([readDataFile(log), readWithMode(head)]);
    if (l) await w.add(`data/${relative(config.dataDir, log).split(sep).join('/')}`, l.data, l.mode);
    if (h) await w.add('registry/audit-head.json', h.data, h.mode);
  });
}

/** The spool: checkpoint first, then segments (storage/spool/snapshot.ts says why). */
export async function copySpool(config: Config, w: BackupWriter) {
  const dir = resolveDataPaths(config.dataDir).spool;
  const base = `data/${relative(config.dataDir, dir).split(sep).join('/')}`;
  return snapshotSpool(dir, (f) => w.add(`${base}/${f.name}`, f.data, 0o600));
}

/** Every other file of the data folder, except what the gateway only holds while it runs. */
async function listDataFiles(dataDir: string): Promise<string[]> {
  const paths = resolveDataPaths(dataDir);
  const skip = new Set([paths.lock, paths.spool, paths.auditLog]);
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    for (const e of entries) {
      const path = join(dir, e.name);
      if (skip.has(path) || /\.(lock|tmp)$/.test(e.name)) continue;
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(path);
    }
  };
  await walk(dataDir);
  return out;
}

/**
 * The logs, job and liveness state, reports: listed again until a pass finds nothing new, so a
 * log rotated (renamed) while it was being copied is caught under its new name.
 */
export async function copyDataFiles(config: Config, w: BackupWriter): Promise<void> {
  const done = new Set<string>();
  for (let pass = 0; pass < 5; pass++) {
    const todo = (await listDataFiles(config.dataDir)).filter((f) => !done.has(f));
    if (todo.length === 0) return;
    for (const file of todo) {
      done.add(file);
      const f = await readDataFile(file);
      if (f) await w.add(`data/${relative(config.dataDir, file).split(sep).join('/')}`, f.data, f.mode);
    }
  }
}
