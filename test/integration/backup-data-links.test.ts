// `livinglab backup` and a data folder someone else has written into (issue 17 review): the gateway
// writes only regular files there, so a symbolic link in place of the spool's checkpoint or the
// audit log was planted, by whoever can write as the gateway's user. A backup, often run as root,
// must not copy what the link points to (a key of the machine, restored later where the gateway's
// user can read it): it fails naming the file, and the backup holds nothing of the target. And a
// backup never lands inside the data folder (it would copy itself), however --out names it.
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';

const SECRET = 'a key of this machine, readable by root only\n';

it.each([['spool/checkpoint.json'], ['audit.ndjson']])(
  'a symbolic link at data/%s: the backup fails naming it and copies nothing it points to',
  async (name) => {
    const dir = await mkdtemp(join(tmpdir(), 'll-backup-links-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const registry = join(dir, 'lab.yaml');
    const dataDir = join(dir, 'data');
    await writeRegistryFile(registry, EMPTY_REGISTRY);
    await mkdir(join(dataDir, 'spool'), { recursive: true });
    const secret = join(dir, 'secret');
    await writeFile(secret, SECRET, { mode: 0o600 });
    await symlink(secret, join(dataDir, name));
    const out = join(dir, 'backup');

    const r = await runCli(['backup', '--out', out, '--registry', registry, '--data-dir', dataDir]);
    expect(r.stderr).toContain(
      `livinglab: ${join(dataDir, name)} is a symbolic link, which the gateway never writes into its data folder`,
    );
    expect(r.code).toBe(2);
    const copied = (await readdir(out, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    for (const e of copied) expect(await readFile(join(e.parentPath, e.name), 'utf8')).not.toBe(SECRET);
    expect(copied.map((e) => e.name)).not.toContain('manifest.json');
  },
);

it.each([
  ['a folder whose name starts with ".."', (dataDir: string) => join(dataDir, '..backup')],
  ['a symbolic link into the data folder', (dataDir: string) => join(dataDir, '..', 'to-reports', 'backup')],
])('--out inside the data folder through %s is refused before anything is written', async (_, outOf) => {
  const dir = await mkdtemp(join(tmpdir(), 'll-backup-out-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  const dataDir = join(dir, 'data');
  await writeRegistryFile(registry, EMPTY_REGISTRY);
  await mkdir(join(dataDir, 'reports'), { recursive: true });
  await symlink(join(dataDir, 'reports'), join(dir, 'to-reports'));
  const out = outOf(dataDir);
  const r = await runCli(['backup', '--out', out, '--registry', registry, '--data-dir', dataDir]);
  expect(r.stderr).toContain(
    `livinglab: --out ${out} is inside the data folder ${dataDir}: choose a folder outside it`,
  );
  expect(r.code).toBe(2);
  expect((await readdir(dataDir, { recursive: true })).sort()).toEqual(['reports']);
});
