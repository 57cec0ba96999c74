// Replaces a file atomically: a temporary file in the same folder, fsync, rename, then fsync of the
// folder, so a reader sees the old file or the new one and a crash after the call returns cannot
// undo the rename. Two files written one after the other reach the disk in that order (the secrets
// file before lab.yaml depends on it). Never leaves the temporary file behind on failure. A symlink
// stays a symlink: the file it points to is the one replaced (lab staff link lab.yaml into a
// checked-out repository, a secrets file into a mounted volume).
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readlink, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Links above this many in a chain are a loop (the kernel's own limit is 40). */
const MAX_LINKS = 40;

/** The file `file` names after following its symlinks (itself when it is none, or does not exist). */
export async function resolveLink(file: string): Promise<string> {
  let path = resolve(file);
  for (let i = 0; i < MAX_LINKS; i++) {
    const s = await lstat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!s?.isSymbolicLink()) return path;
    path = resolve(dirname(path), await readlink(path));
  }
  throw Object.assign(new Error(`${file}: too many levels of symbolic links`), { code: 'ELOOP' });
}

export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const file = await resolveLink(path);
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', mode);
  try {
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (err) {
    // Also after a failed write (disk full): a half-written temporary file per retry would take
    // whatever space is freed, from the spool first of all.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  // Some file systems (and Windows) cannot open a folder for fsync; the rename is then as durable as they make it.
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // EINVAL/EISDIR on file systems without directory fsync: nothing more to do.
  } finally {
    await handle.close();
  }
}
