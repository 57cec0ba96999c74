// `livinglab restore`'s checks and copies: a backup folder is believed only when every file the
// manifest lists is there with its size and SHA-256 and nothing else was added, and it is put back
// only where nothing exists yet (an empty data folder, no registry, secrets or audit head file), so
// a restore can never mix with, or overwrite, a lab's current files.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { MANIFEST, type Manifest, registryFiles, writeNew } from './backup-files.js';

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Every file under `root`, as a '/'-separated path relative to it. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'));
}

function invalid(dir: string, why: string): GatewayError {
  return new GatewayError(
    'LL_BACKUP_INVALID',
    `backup ${dir}: ${why}; nothing was restored. Use an intact copy of the backup`,
  );
}

/** Reads the manifest and checks every file against it; throws LL_BACKUP_INVALID naming the first bad one. */
export async function checkBackup(dir: string): Promise<Manifest> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (err) {
    throw invalid(dir, `${MANIFEST} cannot be read (${(err as Error).message})`);
  }
  if (manifest.format !== 1 || !Array.isArray(manifest.files))
    throw invalid(dir, `${MANIFEST} is not a livinglab backup manifest (format 1)`);
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const f of manifest.files) {
    if (f.path.split('/').includes('..')) throw invalid(dir, `${f.path} points outside the backup`);
    const data = await readFile(join(dir, f.path)).catch((err: unknown) => {
      if (isMissing(err)) throw invalid(dir, `${f.path} is missing`);
      throw err;
    });
    if (data.length !== f.size || createHash('sha256').update(data).digest('hex') !== f.sha256)
      throw invalid(dir, `${f.path} does not match the manifest (changed or damaged since the backup)`);
  }
  for (const path of await filesUnder(dir))
    if (path !== MANIFEST && !listed.has(path))
      throw invalid(dir, `${path} is not in the manifest (added after the backup)`);
  return manifest;
}

/** Refuses unless the data folder is absent or empty and no registry-side file exists. */
export async function checkTargetsEmpty(config: Config): Promise<void> {
  const taken: string[] = [];
  const entries = await readdir(config.dataDir).catch((err: unknown) => {
    if (isMissing(err)) return [];
    throw err;
  });
  if (entries.length > 0) taken.push(`data folder ${config.dataDir} is not empty`);
  for (const file of Object.values(registryFiles(config))) {
    const exists = await readFile(file).then(
      () => true,
      (err: unknown) => !isMissing(err),
    );
    if (exists) taken.push(`${file} exists`);
  }
  if (taken.length > 0)
    throw new GatewayError(
      'LL_RESTORE_TARGET_NOT_EMPTY',
      `cannot restore: ${taken.join('; ')}. A restore writes only into an empty data folder and a registry location without files: choose other --data-dir/--registry, or move those away first`,
    );
}

/** Copies the checked files to where the configuration puts them, with their modes. */
export async function restoreFiles(dir: string, manifest: Manifest, config: Config): Promise<number> {
  const registry = registryFiles(config);
  let n = 0;
  for (const f of manifest.files) {
    const target = f.path.startsWith('data/')
      ? join(config.dataDir, ...f.path.slice('data/'.length).split('/'))
      : registry[f.path];
    if (!target) continue; // influx/…: restored by influxd
    await writeNew(target, await readFile(join(dir, f.path)), f.mode);
    n++;
  }
  return n;
}
