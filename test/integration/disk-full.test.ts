// `livinglab backup` and `livinglab restore` onto a disk that fills up half-way (issue 17 review): a
// real, small tmpfs (mounting one needs root, as CI and the lab machines run the suite; elsewhere
// the tests are skipped and say why). Neither may leave half a copy behind: a backup without its
// manifest only takes space, and half a data folder beside the registry would start a gateway
// without a word about what is missing. Each removes what it wrote and names the file and cause.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { serialiseLivenessState, writeStateFile } from '../../src/jobs/liveness-state.js';
import { createScheduler } from '../../src/jobs/scheduler.js';
import { createLogger } from '../../src/log.js';
import { withRegistryLock } from '../../src/registry/edit-lock.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { withDevices } from '../helpers/gateway.js';

const dir = await mkdtemp(join(tmpdir(), 'll-disk-full-'));
const full = join(dir, 'full');
await mkdir(full);
let mounted = '';
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k,mode=0700', 'tmpfs', full], { stdio: 'pipe' });
  mounted = full;
} catch (err) {
  console.log(
    `[disk-full] skipped: cannot mount a small tmpfs here (${(err as Error).message.split('\n')[0]})`,
  );
}
afterAll(async () => {
  if (mounted) execFileSync('umount', [mounted]);
  await rm(dir, { recursive: true, force: true });
});

/** A lab whose report is larger than the whole small disk (it comes after the registry in a backup). */
async function labWithLargeReport(): Promise<string[]> {
  const registry = join(dir, 'lab.yaml');
  const dataDir = join(dir, 'data');
  await writeRegistryFile(
    registry,
    withDevices(EMPTY_REGISTRY, [{ id: 'df-ox-1', type: 'pulse-oximeter', site: 'df' }]),
  );
  await mkdir(join(dataDir, 'reports'), { recursive: true });
  await writeFile(join(dataDir, 'reports', '2026-11-01.md'), `# Data quality\n${'x'.repeat(256 * 1024)}\n`);
  return ['--registry', registry, '--data-dir', dataDir];
}

it.skipIf(!mounted)(
  'a backup onto a disk that fills up: exit 2 naming ENOSPC, and nothing of it left',
  async () => {
    const out = join(full, 'backup');
    const r = await runCli(['backup', '--out', out, ...(await labWithLargeReport())]);
    expect(r.stderr).toMatch(
      new RegExp(
        `^livinglab: copying into ${out} failed \\(ENOSPC: .*\\); what was copied so far was removed`,
      ),
    );
    expect(r.code).toBe(2);
    expect(await readdir(out)).toEqual([]);
    await rm(out, { recursive: true });
  },
);

it.skipIf(!mounted)(
  'liveness state writes on a full disk fail and leave no temporary file behind',
  async () => {
    const file = join(full, 'liveness.json');
    const devices = new Map(
      Array.from({ length: 4000 }, (_, i) => [
        `ox-${i}`,
        { lastSeen: Date.now(), silent: false, batteryLow: false },
      ]),
    );
    const text = serialiseLivenessState(devices, Date.now());
    expect(text.length).toBeGreaterThan(128 * 1024);
    // The gateway retries a failed write at every interval: three of them here.
    for (let attempt = 0; attempt < 3; attempt++)
      await expect(writeStateFile(file)(text)).rejects.toThrow(/ENOSPC/);
    expect(await readdir(full)).toEqual([]);
  },
);

it.skipIf(!mounted)(
  'a registry edit on a full disk fails and leaves no lock or temporary file behind',
  async () => {
    const filler = join(full, 'filler');
    await writeFile(filler, Buffer.alloc(512 * 1024)).catch(() => undefined);
    const registry = join(full, 'lab.yaml');
    for (let attempt = 0; attempt < 3; attempt++)
      await expect(withRegistryLock(registry, async () => undefined)).rejects.toThrow(/ENOSPC/);
    expect(await readdir(full)).toEqual(['filler']);
    await rm(filler);
  },
);

it.skipIf(!mounted)('recording a daily run on a full disk leaves no temporary file behind', async () => {
  const filler = join(full, 'filler');
  await writeFile(filler, Buffer.alloc(512 * 1024)).catch(() => undefined);
  const scheduler = createScheduler({
    log: createLogger({ level: 'silent' }),
    stateFile: join(full, 'jobs.json'),
    tickMs: 0,
  });
  scheduler.add('quality-report', '30 0 * * *', async () => undefined, { catchUp: true });
  await scheduler.tick();
  await scheduler.stop();
  expect(await readdir(full)).toEqual(['filler']);
  await rm(filler);
});

it.skipIf(!mounted)(
  'a disk that fills up half-way: the restore removes what it wrote and names the file and ENOSPC',
  async () => {
    const backup = join(dir, 'backup');
    const taken = await runCli(['backup', '--out', backup, ...(await labWithLargeReport())]);
    expect(taken.code, taken.stderr).toBe(0);

    const to = ['--registry', join(full, 'lab.yaml'), '--data-dir', join(full, 'data')];
    const r = await runCli(['restore', backup, ...to]);
    expect(r.stderr).toMatch(
      new RegExp(
        `^livinglab: writing ${join(full, 'data', 'reports', '2026-11-01.md')} failed \\(ENOSPC: .*\\); the \\d+ file\\(s\\) this restore had written were removed again`,
      ),
    );
    expect(r.code).toBe(2);
    // Nothing is left: no registry, no secrets, no data folder a gateway could start on.
    expect(await readdir(full, { recursive: true })).toEqual([]);
    // Once there is room, the same backup restores.
    execFileSync('mount', ['-o', 'remount,size=2m', mounted]);
    const again = await runCli(['restore', backup, ...to]);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(full)).sort()).toEqual(['data', 'lab.secrets.yaml', 'lab.yaml']);
  },
);
