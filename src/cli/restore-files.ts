// `livinglab restore`'s checks and copies: a backup folder is believed only when every file the
// manifest lists is there with its size and SHA-256 and nothing else was added, and it is put back
// only where nothing exists yet (an empty data folder, no registry, secrets or audit head file), so
// a restore can never mix with, or overwrite, a lab's current files.
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { MANIFEST, type Manifest, type ManifestFile, registryFiles, writeNew } from './backup-files.js';

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

function invalid(dir: string, why: string): GatewayError {
  return new GatewayError(
    'LL_BACKUP_INVALID',
    `backup ${dir}: ${why}; nothing was restored. Use an intact copy of the backup`,
  );
}

/**
 * Every file under `dir`, as a '/'-separated path relative to it. A backup holds only folders and
 * regular files: a symbolic link would make the restore copy whatever it points to (outside the
 * backup, say a key of the machine) into the data folder, and reading a FIFO never ends. The walk
 * does not follow links, so nothing outside `dir` is ever opened.
 */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const files: string[] = [];
  for (const e of entries) {
    if (e.isDirectory()) continue;
    const path = relative(dir, join(e.parentPath, e.name)).split(sep).join('/');
    if (!e.isFile())
      throw invalid(
        dir,
        `${path} is ${e.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}, which a backup never holds`,
      );
    files.push(path);
  }
  return files;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Why a manifest line is not one `livinglab backup` writes, or undefined when it is one. */
function badEntry(f: unknown): string | undefined {
  const e = f as Partial<Record<keyof ManifestFile, unknown>>;
  if (typeof e !== 'object' || e === null || typeof e.path !== 'string') return 'a file without a path';
  const parts = e.path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return `${e.path} points outside the backup`;
  if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) return `${e.path} has no valid size`;
  if (typeof e.sha256 !== 'string' || !SHA256.test(e.sha256)) return `${e.path} has no valid SHA-256`;
  // Permission bits only: a backup never records set-uid, set-gid or sticky bits.
  if (!Number.isInteger(e.mode) || (e.mode as number) < 0 || (e.mode as number) > 0o777)
    return `${e.path} has a mode that is not permission bits (${String(e.mode)})`;
  return undefined;
}

/** Reads the manifest and checks every file against it; throws LL_BACKUP_INVALID naming the first bad one. */
export async function checkBackup(dir: string): Promise<Manifest> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (err) {
    throw invalid(dir, `${MANIFEST} cannot be read (${(err as Error).message})`);
  }
  if (manifest?.format !== 1 || !Array.isArray(manifest.files))
    throw invalid(dir, `${MANIFEST} is not a livinglab backup manifest (format 1)`);
  for (const f of manifest.files) {
    const bad = badEntry(f);
    if (bad) throw invalid(dir, `${MANIFEST} lists ${bad}`);
  }
  // What is there, checked before anything is read: only regular files are ever opened.
  const present = new Set(await filesUnder(dir));
  const listed = new Set(manifest.files.map((f) => f.path));
  // Each file once: a second line for one path would fail the restore half-way through.
  if (listed.size !== manifest.files.length) throw invalid(dir, `${MANIFEST} lists a file twice`);
  for (const f of manifest.files) {
    if (!present.has(f.path)) throw invalid(dir, `${f.path} is missing`);
    const data = await readFile(join(dir, f.path));
    if (data.length !== f.size || createHash('sha256').update(data).digest('hex') !== f.sha256)
      throw invalid(dir, `${f.path} does not match the manifest (changed or damaged since the backup)`);
  }
  for (const path of present)
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
    // lstat: a link that points nowhere is there all the same, and the restore's exclusive create
    // would fail on it after the data folder was written, leaving half a restore.
    const s = await lstat(file).catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (s?.isSymbolicLink()) taken.push(`${file} exists (a symbolic link to ${await readlink(file)})`);
    else if (s) taken.push(`${file} exists`);
  }
  if (taken.length > 0)
    throw new GatewayError(
      'LL_RESTORE_TARGET_NOT_EMPTY',
      `cannot restore: ${taken.join('; ')}. A restore writes only into an empty data folder and a registry location without files: choose other --data-dir/--registry, or move those away first`,
    );
}

/**
 * Removes what a failed restore wrote: its files, then the folders they left empty, deepest first
 * (rmdir removes only empty ones); the data folder itself only if the restore created it.
 */
async function undoRestore(written: string[], dataDir: string, dataDirExisted: boolean): Promise<void> {
  for (const file of written) await unlink(file).catch(() => undefined);
  const dirs = new Set<string>();
  for (const file of written)
    for (let d = dirname(file); d.startsWith(`${dataDir}${sep}`); d = dirname(d)) dirs.add(d);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await rmdir(d).catch(() => undefined);
  if (!dataDirExisted) await rmdir(dataDir).catch(() => undefined);
}

/**
 * Copies the checked files to where the configuration puts them, with their modes. A write that
 * fails (disk full, I/O error) undoes the restore: a half-restored folder, spool segments cut
 * short and the registry present, would start a gateway that has lost readings without a word.
 */
export async function restoreFiles(dir: string, manifest: Manifest, config: Config): Promise<number> {
  const registry = registryFiles(config);
  const dataDir = resolve(config.dataDir);
  const dataDirExisted = await stat(dataDir).then(
    () => true,
    () => false,
  );
  const written: string[] = [];
  for (const f of manifest.files) {
    const target = f.path.startsWith('data/')
      ? join(dataDir, ...f.path.slice('data/'.length).split('/'))
      : registry[f.path];
    if (!target) continue; // influx/…: restored by influxd
    try {
      await writeNew(target, await readFile(join(dir, f.path)), f.mode);
      written.push(target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // EEXIST: not ours (created meanwhile by someone else), so never removed.
      if (code !== 'EEXIST') written.push(target);
      await undoRestore(written, dataDir, dataDirExisted);
      throw new GatewayError(
        'LL_RESTORE_FAILED',
        `writing ${target} failed (${(err as Error).message}); the ${written.length} file(s) this restore had written were removed again and nothing else was changed: fix the cause (free space on that disk, check it) and restore again`,
        { cause: err },
      );
    }
  }
  return written.length;
}
