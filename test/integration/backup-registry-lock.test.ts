// `livinglab backup` and a registry edit in progress (issue 17): an edit writes the secrets file and
// then lab.yaml, holding the registry's edit lock; a backup that read the pair between the two
// writes would restore a secret without its device, or a device without its secret. The backup
// holds the same lock while it reads the pair: it waits for the edit, or fails saying so.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, expect, it, onTestFinished } from 'vitest';
import { writeFileAtomic } from '../../src/registry/atomic-write.js';
import { withRegistryLock } from '../../src/registry/edit-lock.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { secretsFileFor } from '../../src/registry/secrets-file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { withDevices } from '../helpers/gateway.js';
import { eventually } from '../helpers/mqtt.js';

const OX1 = { id: 'bl-ox-1', type: 'pulse-oximeter', site: 'bl' };
const OX2 = { id: 'bl-ox-2' };
// The backup copies bytes: these stand for the secrets file before and after the edit, and the
// change the edit's second write makes to lab.yaml.
const SECRETS_BEFORE = 'version: 1\n# secrets of bl-ox-1\n';
const SECRETS_AFTER = 'version: 1\n# secrets of bl-ox-1 and bl-ox-2\n';
const REGISTRY_EDIT = `# ${OX2.id} added\n`;

let dir = '';
let registry = '';
let secrets = '';
let dataDir = '';
let out = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'll-backup-lock-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  registry = join(dir, 'lab.yaml');
  secrets = secretsFileFor(registry);
  dataDir = join(dir, 'data');
  out = join(dir, 'backup');
  await mkdir(dataDir);
  await writeRegistryFile(registry, withDevices(EMPTY_REGISTRY, [OX1]));
  await writeFileAtomic(secrets, SECRETS_BEFORE);
});

const backup = (...extra: string[]) =>
  runCli(['backup', '--out', out, '--registry', registry, '--data-dir', dataDir, ...extra]);

/** Holds the edit lock and writes the first half of an edit; `finish()` writes lab.yaml and releases. */
async function editInProgress() {
  let finish: () => void = () => undefined;
  let started: () => void = () => undefined;
  const halfWritten = new Promise<void>((r) => {
    started = r;
  });
  const done = withRegistryLock(registry, async () => {
    await writeFileAtomic(secrets, SECRETS_AFTER);
    started();
    await new Promise<void>((r) => {
      finish = r;
    });
    await writeFileAtomic(registry, `${await readFile(registry, 'utf8')}${REGISTRY_EDIT}`);
  });
  await halfWritten;
  return {
    finish: async () => {
      finish();
      await done;
    },
  };
}

it('an edit that outlasts --wait: the backup fails naming the lock and its holder, and copies no registry', async () => {
  const edit = await editInProgress();
  onTestFinished(() => edit.finish());
  const r = await backup('--wait', '1s');
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(
    `livinglab: the registry ${registry} has been edited by another process (pid ${process.pid} on host `,
  );
  expect(r.stderr).toContain(`lock ${registry}.lock) for more than 1 s`);
  expect(r.stderr).toContain('this backup is not complete (it has no manifest.json)');
  const copied = await readdir(out, { recursive: true });
  expect(copied).not.toContain('manifest.json');
  expect(copied.filter((f) => f.startsWith('registry'))).toEqual([]);
});

it('an edit that finishes while the backup waits: the backup copies the finished pair', async () => {
  const edit = await editInProgress();
  const running = backup();
  // The backup has started copying (it makes --out first) while the edit is half written.
  await eventually(
    () =>
      readdir(out).then(
        () => true,
        () => false,
      ),
    (made) => made,
    30_000,
  );
  // Time for a backup that ignored the lock to copy the half-written pair and exit: this one waits.
  const early = await Promise.race([running.then(() => 'exited'), sleep(3000).then(() => 'waiting')]);
  expect(early).toBe('waiting');
  await edit.finish();
  const r = await running;
  expect(r.stderr).toMatch(/^backup in /);
  expect(r.code).toBe(0);
  expect(await readFile(join(out, 'registry/secrets.yaml'), 'utf8')).toBe(SECRETS_AFTER);
  expect(await readFile(join(out, 'registry/registry.yaml'), 'utf8')).toBe(await readFile(registry, 'utf8'));
  expect(await readFile(join(out, 'registry/registry.yaml'), 'utf8')).toContain(REGISTRY_EDIT);
});
