// Registry edits that run at the same time, or against a symlinked registry, or after a process
// died holding the edit lock (issue 17): the real CLI in child processes (runCli), the files read
// back through the registry reader, the printed passwords checked with the gateway's verifier.
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { registryLockFile } from '../../src/registry/edit-lock.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { processStartTime } from '../../src/registry/lock-file.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { withDevices } from '../helpers/gateway.js';

const DATA_DIR = mkdtempSync(join(tmpdir(), 'll-edits-data-'));
afterAll(() => rmSync(DATA_DIR, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(args, { env: { LIVINGLAB_DATA_DIR: DATA_DIR }, timeoutMs: 170_000 });

let dir = '';
let reg = '';
beforeEach(() => {
  const own = mkdtempSync(join(tmpdir(), 'll-edits-'));
  dir = own;
  reg = join(own, 'lab.yaml');
  onTestFinished(() => rmSync(own, { recursive: true, force: true }));
});
const add = (id: string, registry = reg) =>
  cli([
    ...['devices', 'add', '--registry', registry, '--id', id, '--type', 'weight-scale'],
    ...['--site', 'odense', '--vendor', 'acme'],
  ]);

// Eight CLI processes at once on a loaded two-core machine take tens of seconds: the timeout only
// guards against a hang.
describe('registry edits at the same time', { timeout: 180_000 }, () => {
  it('eight parallel `devices add` leave eight devices, and each printed password logs its device in', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `scale-${i + 1}`);
    const results = await Promise.all(ids.map((id) => add(id)));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const data = await readRegistryFile(reg);
    expect(data.devices.map((d) => d.id).sort()).toEqual([...ids].sort());
    const verifier = createPasswordVerifier();
    for (const [i, id] of ids.entries()) {
      const hash = data.devices.find((d) => d.id === id)?.passwordHash ?? '';
      expect(await verifier.verify(hash, results[i]?.stdout.trim() ?? ''), id).toBe(true);
    }
  });

  it('a `devices disable` beside a `devices add` keeps both changes', async () => {
    // A registry of 2,000 devices takes each edit a second or more to read and write, so the two
    // commands' edits overlap (with a handful of devices they mostly ran one after the other).
    const many = Array.from({ length: 2000 }, (_, i) => ({
      id: `scale-${i + 1}`,
      type: 'weight-scale',
      site: 'odense',
    }));
    await writeRegistryFile(reg, withDevices(EMPTY_REGISTRY, many));
    const [disabled, added] = await Promise.all([
      cli(['devices', 'disable', 'scale-1', '--registry', reg]),
      add('scale-new'),
    ]);
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(added.code, added.stderr).toBe(0);
    const data = await readRegistryFile(reg);
    expect(data.devices).toHaveLength(2001);
    expect(data.devices.find((d) => d.id === 'scale-1')?.enabled).toBe(false);
    expect(data.devices.find((d) => d.id === 'scale-new')?.enabled).toBe(true);
  });
});

describe('registry edits on symlinks and after a holder died', { timeout: 180_000 }, () => {
  it('a symlinked lab.yaml and secrets file stay symlinks after `devices add`, and their targets hold the device', async () => {
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    expect((await add('scale-1', join(repo, 'lab.yaml'))).code).toBe(0);
    symlinkSync(join(repo, 'lab.yaml'), reg);
    symlinkSync('repo/lab.secrets.yaml', join(dir, 'lab.secrets.yaml'));
    const r = await add('scale-2');
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(reg).isSymbolicLink()).toBe(true);
    expect(readlinkSync(reg)).toBe(join(repo, 'lab.yaml'));
    expect(lstatSync(join(dir, 'lab.secrets.yaml')).isSymbolicLink()).toBe(true);
    const data = await readRegistryFile(join(repo, 'lab.yaml'));
    expect(data.devices.map((d) => d.id)).toEqual(['scale-1', 'scale-2']);
    const hash = data.devices[1]?.passwordHash ?? '';
    expect(await createPasswordVerifier().verify(hash, r.stdout.trim())).toBe(true);
  });

  it('a lock left by a killed process, or by a pid now reused, does not block the next edit', async () => {
    expect((await add('scale-1')).code).toBe(0);
    // A process that held the lock and was killed with SIGKILL: its pid is gone.
    const victim = spawn('sleep', ['60']);
    const pid = victim.pid ?? 0;
    const started = processStartTime(pid);
    await new Promise((r) => {
      victim.once('exit', r);
      victim.kill('SIGKILL');
    });
    const lock = await registryLockFile(reg);
    const holder = { pid, host: hostname(), since: new Date().toISOString(), started, token: 'dead' };
    writeFileSync(lock, `${JSON.stringify(holder)}\n`);
    const first = await add('scale-2');
    expect(first.code, first.stderr).toBe(0);
    // A live pid (this test's own) with another start time: the holder died and its pid was reused.
    const reused = { ...holder, pid: process.pid, started: '1', token: 'reused' };
    writeFileSync(lock, `${JSON.stringify(reused)}\n`);
    const second = await cli(['devices', 'disable', 'scale-1', '--registry', reg]);
    expect(second.code, second.stderr).toBe(0);
    const data = await readRegistryFile(reg);
    expect(data.devices.map((d) => [d.id, d.enabled])).toEqual([
      ['scale-1', false],
      ['scale-2', true],
    ]);
  });
});
