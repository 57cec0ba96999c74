import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { readRegistryFile } from '../../src/registry/file.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { runCli } from '../helpers/cli.js';
import { closedPortUrl } from '../helpers/ports.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

// Registry edits append to the audit log of the data folder: a temporary one, never the repository's.
const DATA_DIR = mkdtempSync(join(tmpdir(), 'll-cli-data-'));
const cli = (args: string[], input?: string) =>
  runCli(args, { input, env: { LIVINGLAB_DATA_DIR: DATA_DIR } });

// Each test runs several CLI processes one after another (about 1 s each on an idle machine, up to
// 10 s on a loaded one): the timeout only guards against a hang.
describe('livinglab command line', { timeout: 120_000 }, () => {
  // Each test has its own folder and registry, removed when it finishes: no test reads another's state.
  let dir = '';
  let reg = '';
  beforeEach(() => {
    const own = mkdtempSync(join(tmpdir(), 'll-cli-'));
    dir = own;
    reg = join(own, 'lab.yaml');
    onTestFinished(() => rmSync(own, { recursive: true, force: true }));
  });
  /** `devices add` of a device at site odense from vendor acme, with more flags after. */
  const addArgs = (id: string, type: string, ...flags: string[]) => [
    ...['devices', 'add', '--registry', reg, '--id', id, '--type', type],
    ...['--site', 'odense', '--vendor', 'acme', ...flags],
  ];
  /** This test's registry with ox-0001 (subject p-017, every 60s) and, when asked, bp-0001. */
  const seed = async (withBp = false) => {
    expect(
      (await cli(addArgs('ox-0001', 'pulse-oximeter', '--subject', 'p-017', '--interval', '60s'))).code,
    ).toBe(0);
    if (withBp)
      expect(
        (await cli(addArgs('bp-0001', 'blood-pressure', '--password-stdin'), 'chosen-password\n')).code,
      ).toBe(0);
  };

  it('is the package bin and lists its commands', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.livinglab).toBe('bin/livinglab.js');
    const { stdout } = await run(process.execPath, [join(ROOT, 'bin/livinglab.js'), '--help']);
    for (const cmd of ['serve', 'devices', 'accounts', 'schemas']) expect(stdout).toContain(cmd);
  });

  it('every command listed by --help has its own --help with its usage and a description', {
    timeout: 240_000,
  }, async () => {
    const top = await cli(['--help']);
    const commands = [...(top.stdout.split('Commands:')[1] ?? '').matchAll(/^ {2}([a-z]+)\b/gm)]
      .map((m) => m[1] as string)
      .filter((c) => c !== 'help');
    expect(commands.sort()).toEqual(
      [
        ...['accounts', 'audit', 'certs', 'devices', 'export', 'projects', 'record', 'replay'],
        ...['registry', 'report', 'schemas', 'serve', 'simulate', 'status', 'tokens'],
        ...['backup', 'restore', 'broker'],
      ].sort(),
    );
    // Three at a time: fifteen CLI start-ups at once on a loaded machine only time each other out.
    const helps: Awaited<ReturnType<typeof cli>>[] = [];
    for (let i = 0; i < commands.length; i += 3)
      helps.push(...(await Promise.all(commands.slice(i, i + 3).map((cmd) => cli([cmd, '--help'])))));
    for (const [i, cmd] of commands.entries()) {
      const r = helps[i] as Awaited<ReturnType<typeof cli>>;
      expect(r, cmd).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout, cmd).toMatch(new RegExp(`^Usage: livinglab ${cmd} `));
      // Usage, a blank line, then the description before the options or subcommands.
      expect(r.stdout.split('\n')[2], `${cmd}: description`).toMatch(/^[a-z]\S* \S+/);
    }
  });

  it('devices add creates the registry (0600) and prints a password that verifies, once', async () => {
    const r = await cli(addArgs('ox-0001', 'pulse-oximeter', '--subject', 'p-017', '--interval', '60s'));
    expect(r.code).toBe(0);
    const password = r.stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(statSync(reg).mode & 0o777).toBe(0o600);
    const data = await readRegistryFile(reg);
    expect(data.devices[0]).toMatchObject({
      id: 'ox-0001',
      type: 'pulse-oximeter',
      schemaVersion: 1,
      site: 'odense',
      assignments: [{ subject: 'p-017' }],
      interval: '60s',
      enabled: true,
    });
    expect(readFileSync(reg, 'utf8')).not.toContain(password);
    expect(await createPasswordVerifier().verify(data.devices[0]?.passwordHash ?? '', password)).toBe(true);
  });

  it('--password-stdin sets a chosen password at a strong cost', async () => {
    const r = await cli(addArgs('bp-0001', 'blood-pressure', '--password-stdin'), 'chosen-password\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const hash = (await readRegistryFile(reg)).devices.find((d) => d.id === 'bp-0001')?.passwordHash ?? '';
    expect(hash).toMatch(/^\$7\$210000\$/);
    expect(await createPasswordVerifier().verify(hash, 'chosen-password')).toBe(true);
  });

  it('refuses an unknown type, a duplicate id and a bad id with a clear message and exit 2', async () => {
    await seed();
    const bad = await cli(addArgs('x-1', 'toaster'));
    expect(bad).toMatchObject({ code: 2 });
    expect(bad.stderr).toMatch(/no schema for device type "toaster"; known types: .*pulse-oximeter/);
    const before = readFileSync(reg, 'utf8');
    const dup = await cli(addArgs('ox-0001', 'pulse-oximeter'));
    expect(dup).toMatchObject({ code: 2, stdout: '' });
    expect(dup.stderr).toContain('device ox-0001 already exists');
    const badId = await cli(addArgs('OX 1', 'pulse-oximeter'));
    expect(badId).toMatchObject({ code: 2, stdout: '' });
    expect(badId.stderr).toContain('device id "OX 1" must be');
    // Nothing of the three refused commands reached the registry.
    expect(readFileSync(reg, 'utf8')).toBe(before);
  });

  it('lists, disables, enables, changes the password of and removes devices', async () => {
    await seed(true);
    const list = await cli(['devices', 'list', '--registry', reg]);
    expect(list.stdout.split('\n')[1]).toMatch(
      /^ox-0001\s+pulse-oximeter@1\s+odense\s+acme\s+p-017\s+60s\s+yes\s+real$/,
    );
    expect((await cli(['devices', 'disable', 'ox-0001', '--registry', reg])).code).toBe(0);
    expect((await readRegistryFile(reg)).devices[0]?.enabled).toBe(false);
    expect((await cli(['devices', 'enable', 'ox-0001', '--registry', reg])).code).toBe(0);
    expect((await readRegistryFile(reg)).devices[0]?.enabled).toBe(true);
    const before = (await readRegistryFile(reg)).devices[0]?.passwordHash;
    const pw = await cli(['devices', 'passwd', 'ox-0001', '--registry', reg]);
    const after = (await readRegistryFile(reg)).devices[0]?.passwordHash ?? '';
    expect(after).not.toBe(before);
    expect(await createPasswordVerifier().verify(after, pw.stdout.trim())).toBe(true);
    const json = JSON.parse((await cli(['devices', 'list', '--json', '--registry', reg])).stdout) as object[];
    expect(JSON.stringify(json)).not.toContain('passwordHash');
    expect((await cli(['devices', 'remove', 'bp-0001', '--registry', reg])).code).toBe(0);
    expect((await readRegistryFile(reg)).devices.map((d) => d.id)).toEqual(['ox-0001']);
    const missing = await cli(['devices', 'remove', 'bp-0001', '--registry', reg]);
    expect(missing).toMatchObject({ code: 2, stderr: 'livinglab: device bp-0001 is not in the registry\n' });
  });

  it('devices assign records a move and refuses to rewrite history (issue 13 #4)', async () => {
    await seed();
    const help = await cli(['devices', 'assign', '--help']);
    expect(help.stdout).toContain('--subject <code>');
    expect(help.stdout).toContain('--from <time>');
    const move = await cli([
      'devices',
      'assign',
      'ox-0001',
      '--subject',
      'p-018',
      '--from',
      '2026-03-01T13:00:00+01:00',
      '--registry',
      reg,
    ]);
    expect(move).toMatchObject({
      code: 0,
      stderr: expect.stringContaining('assigned to p-018 from 2026-03-01T12:00:00.000Z'),
    });
    expect((await readRegistryFile(reg)).devices[0]?.assignments).toEqual([
      { subject: 'p-017', to: '2026-03-01T12:00:00.000Z' },
      { subject: 'p-018', from: '2026-03-01T12:00:00.000Z' },
    ]);
    expect((await cli(['devices', 'list', '--registry', reg])).stdout).toMatch(/\nox-0001\s.*\sp-018\s/);
    const rewrite = await cli([
      'devices',
      'assign',
      'ox-0001',
      '--none',
      '--from',
      '2026-02-01T00:00:00Z',
      '--registry',
      reg,
    ]);
    expect(rewrite.code).toBe(2);
    expect(rewrite.stderr).toContain('never rewrites history');
    const neither = await cli(['devices', 'assign', 'ox-0001', '--registry', reg]);
    expect(neither).toMatchObject({ code: 2, stderr: 'livinglab: give either --subject CODE or --none\n' });
    expect((await cli(['devices', 'assign', 'ox-0001', '--none', '--registry', reg])).code).toBe(0);
    expect((await readRegistryFile(reg)).devices[0]?.assignments[1]?.to).toBeDefined();
  });

  it('adds a staff account', async () => {
    const r = await cli(['accounts', 'add', '--id', 'staff-1', '--role', 'staff', '--registry', reg]);
    expect(r.code).toBe(0);
    expect((await readRegistryFile(reg)).accounts).toMatchObject([
      { id: 'staff-1', role: 'staff', enabled: true },
    ]);
  });

  it('imports a mosquitto_passwd file: updates known devices, creates others on request, refuses argon2id lines', async () => {
    await seed();
    const pwfile = join(dir, 'passwd');
    await run('mosquitto_passwd', ['-c', '-b', pwfile, 'ox-0001', 'imported-1']);
    await run('mosquitto_passwd', ['-b', pwfile, 'door-0001', 'imported-2']);
    writeFileSync(
      pwfile,
      `${readFileSync(pwfile, 'utf8')}door-0002:$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA\n`,
    );
    const r = await cli([
      'devices',
      'import-mosquitto',
      pwfile,
      '--registry',
      reg,
      '--type',
      'door-sensor',
      '--site',
      'vejle',
      '--vendor',
      'doorco',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/passwd:3: door-0002: refused: argon2id/);
    expect(r.stderr).toContain('1 password(s) updated, 1 device(s) added, 1 line(s) not imported');
    const data = await readRegistryFile(reg);
    const verifier = createPasswordVerifier();
    expect(
      await verifier.verify(data.devices.find((d) => d.id === 'ox-0001')?.passwordHash ?? '', 'imported-1'),
    ).toBe(true);
    expect(data.devices.find((d) => d.id === 'door-0001')).toMatchObject({
      type: 'door-sensor',
      site: 'vejle',
      vendor: 'doorco',
    });
  });

  it('names the file and line of a broken registry', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(
      broken,
      'version: 1\ndevices:\n  - id: ox-0001\n    type: pulse-oximeter\n    schemaVersion: 1\n    site: odense\n    vendor: acme\n    passwordHash: $7$x\n    colour: red\n',
    );
    const r = await cli(['devices', 'list', '--registry', broken]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${broken}:9: devices.0: must NOT have additional properties ("colour")`);
  });

  it('schemas check passes and schemas validate prints the feedback a device would get', async () => {
    const check = await cli(['schemas', 'check']);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('11 schemas in');
    const file = join(dir, 'msg.json');
    writeFileSync(
      file,
      JSON.stringify({
        readings: [
          { ts: '2026-11-22T10:00:00Z', spo2: 97, pulse: 70 },
          { ts: '2026-11-22T10:01:00Z', spo2: 104, pulse: 70 },
        ],
      }),
    );
    const v = await cli(['schemas', 'validate', '--type', 'pulse-oximeter', file]);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.stdout)).toMatchObject({
      reason: 'schema',
      readingIndex: 1,
      errors: [{ path: '/spo2', message: 'must be <= 100', value: 104 }],
      schema: 'pulse-oximeter@1',
    });
    expect(v.stderr).toContain('1 valid reading(s), 1 rejected (pulse-oximeter@1)');
  });

  it('serve without a spool reports an unreachable InfluxDB with the URL and exits 2', async () => {
    const nowhere = await closedPortUrl();
    const r = await cli([
      'serve',
      '--registry',
      reg,
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--ops-port',
      '0',
      '--influx-url',
      nowhere,
      '--data-dir',
      join(dir, 'data'),
      '--log-level',
      'silent',
      '--no-spool',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`InfluxDB at ${nowhere} `);
    expect(r.stderr).toMatch(/is influxd running\? \(--influx-url\)/);
  });
});
