// `livinglab restore` believes a backup folder only as far as `livinglab backup` could have written
// it (issue 17 review): folders and regular files, manifest lines with a relative path, a size, a
// SHA-256 and permission bits. A backup kept on shared storage can be altered together with its
// manifest; whatever is in it, the restore must not read outside the backup, hang, or create
// set-uid files, and must refuse with LL_BACKUP_INVALID before writing anything.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { withDevices } from '../helpers/gateway.js';

const REPORT = 'data/reports/2026-11-01.md';
let dir = '';
let backup = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'll-restore-checks-'));
  const registry = join(dir, 'lab.yaml');
  const dataDir = join(dir, 'data');
  await writeRegistryFile(
    registry,
    withDevices(EMPTY_REGISTRY, [{ id: 'rc-ox-1', type: 'pulse-oximeter', site: 'rc' }]),
  );
  await mkdir(join(dataDir, 'reports'), { recursive: true });
  await writeFile(join(dataDir, 'reports', '2026-11-01.md'), '# Data quality 2026-11-01\n');
  backup = join(dir, 'backup');
  const r = await runCli(['backup', '--out', backup, '--registry', registry, '--data-dir', dataDir]);
  expect(r.code, r.stderr).toBe(0);
  return () => rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A copy of the backup to alter, and a fresh place to restore it into. */
async function altered() {
  n++;
  const copy = join(dir, `copy-${n}`);
  await cp(backup, copy, { recursive: true });
  const target = join(dir, `target-${n}`);
  const manifestFile = join(copy, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as {
    files: { path: string; size: number; sha256: string; mode: number }[];
  };
  return {
    copy,
    target,
    manifest,
    saveManifest: () => writeFile(manifestFile, JSON.stringify(manifest)),
    restore: (timeoutMs = 30_000) =>
      runCli(['restore', copy, '--registry', join(target, 'lab.yaml'), '--data-dir', join(target, 'data')], {
        timeoutMs,
      }),
  };
}

const entry = (m: { files: { path: string }[] }, path: string) =>
  m.files.find((f) => f.path === path) as { path: string; size: number; sha256: string; mode: number };

it('refuses a symbolic link in the backup (to a file outside it), and reads nothing through it', async () => {
  const b = await altered();
  const outside = join(dir, 'outside-secret');
  await writeFile(outside, 'a key of this machine\n');
  await unlink(join(b.copy, REPORT));
  await symlink(outside, join(b.copy, REPORT));
  // The manifest altered to match what the link points to: only the walk can tell.
  const data = await readFile(outside);
  Object.assign(entry(b.manifest, REPORT), {
    size: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
  });
  await b.saveManifest();
  const r = await b.restore();
  expect(r.stderr).toContain(
    `${REPORT} is a symbolic link, which a backup never holds; nothing was restored`,
  );
  expect(r.code).toBe(2);
  await expect(stat(b.target)).rejects.toThrow(/ENOENT/);
});

it('refuses a FIFO in the backup at once instead of waiting on it for ever', async () => {
  const b = await altered();
  await unlink(join(b.copy, REPORT));
  execFileSync('mkfifo', [join(b.copy, REPORT)]);
  const r = await b.restore(20_000);
  expect(r.stderr).toContain(`${REPORT} is not a regular file, which a backup never holds`);
  expect(r.code).toBe(2);
  await expect(stat(b.target)).rejects.toThrow(/ENOENT/);
});

it('refuses a manifest that asks for a set-uid mode, and creates no file', async () => {
  const b = await altered();
  entry(b.manifest, REPORT).mode = 0o4755;
  await b.saveManifest();
  const r = await b.restore();
  expect(r.stderr).toContain(`manifest.json lists ${REPORT} has a mode that is not permission bits (2541)`);
  expect(r.code).toBe(2);
  await expect(stat(b.target)).rejects.toThrow(/ENOENT/);
});

it.each([
  ['a line without a path', { format: 1, files: [{ path: 7 }] }, 'manifest.json lists a file without a path'],
  ['null', null, 'manifest.json is not a livinglab backup manifest (format 1)'],
])('refuses a manifest with %s with LL_BACKUP_INVALID, not a crash', async (_, manifest, message) => {
  const b = await altered();
  await writeFile(join(b.copy, 'manifest.json'), JSON.stringify(manifest));
  const r = await b.restore();
  expect(r.stderr).toContain(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.code).toBe(2);
});

it('refuses a manifest that lists a file twice before writing anything (it failed half-way)', async () => {
  const b = await altered();
  b.manifest.files.push({ ...entry(b.manifest, REPORT) });
  await b.saveManifest();
  const r = await b.restore();
  expect(r.stderr).toContain('manifest.json lists a file twice; nothing was restored');
  expect(r.code).toBe(2);
  await expect(stat(b.target)).rejects.toThrow(/ENOENT/);
});

it('counts a link that points nowhere where the secrets file goes as taken, before writing anything', async () => {
  const b = await altered();
  await mkdir(b.target);
  const secrets = join(b.target, 'lab.secrets.yaml');
  await symlink(join(dir, 'nowhere'), secrets);
  const r = await b.restore();
  expect(r.stderr).toContain(
    `cannot restore: ${secrets} exists (a symbolic link to ${join(dir, 'nowhere')})`,
  );
  expect(r.code).toBe(2);
  await expect(stat(join(b.target, 'data'))).rejects.toThrow(/ENOENT/);
  await expect(stat(join(b.target, 'lab.yaml'))).rejects.toThrow(/ENOENT/);
});
