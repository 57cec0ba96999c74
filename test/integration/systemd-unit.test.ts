// The systemd unit in deploy/systemd (issue 17) passes `systemd-analyze verify`: no unknown or
// misspelt option (which systemd would ignore, silently dropping a hardening setting), an
// executable ExecStart. The copy verified points ExecStart at this machine's node and this checkout.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const UNIT = join(ROOT, 'deploy/systemd/livinglab.service');

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function verify(text: string): Promise<{ status: number | null; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'll-unit-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'livinglab.service');
  await writeFile(file, text);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

const local = (unit: string) =>
  unit.replace('ExecStart=/usr/bin/node /opt/livinglab/', `ExecStart=${process.execPath} ${ROOT}`);

describe.skipIf(!hasSystemdAnalyze())('deploy/systemd/livinglab.service', () => {
  it('passes systemd-analyze verify with no warning', async () => {
    const unit = await readFile(UNIT, 'utf8');
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/livinglab/bin/livinglab.js serve');
    expect(await verify(local(unit))).toEqual({ status: 0, stderr: '' });
  });

  it('restarts on failure as a dedicated user with its state and config directories, hardened', async () => {
    const unit = await readFile(UNIT, 'utf8');
    for (const line of [
      'Restart=on-failure',
      'User=livinglab',
      'StateDirectory=livinglab',
      'ConfigurationDirectory=livinglab',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=\n',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'SystemCallFilter=@system-service',
    ])
      expect(unit).toContain(line);
  });

  it('would catch a misspelt option (the check is not vacuous)', async () => {
    const unit = local(await readFile(UNIT, 'utf8')).replace('ProtectSystem=strict', 'ProtectSytem=strict');
    expect((await verify(unit)).stderr).toContain("Unknown key 'ProtectSytem'");
  });
});
