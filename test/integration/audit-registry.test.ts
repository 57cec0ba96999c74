// Every registry change that affects who can see or send what leaves exactly one audit entry,
// written by the `livinglab` command that made it, into the data folder's audit log.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';

describe('audit of registry changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'll-audit-reg-'));
  const reg = join(dir, 'lab.yaml');
  const data = join(dir, 'data');
  const auditFile = join(data, 'audit.ndjson');
  const entries = () => {
    let text = '';
    try {
      text = readFileSync(auditFile, 'utf8');
    } catch {}
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  const cli = (...args: string[]) => runCli([...args, '--registry', reg, '--data-dir', data]);
  const mosquitto = join(dir, 'passwd');
  writeFileSync(
    mosquitto,
    `ox-1:${hashSecretSync('old-one', 101)}\nox-9:${hashSecretSync('new-one', 101)}\n`,
  );

  // [command, the entries it must leave (in order)]
  const changes: [string[], Record<string, unknown>[]][] = [
    [
      [
        'devices',
        'add',
        '--id',
        'ox-1',
        '--type',
        'pulse-oximeter',
        '--site',
        'home-1',
        '--vendor',
        'acme',
        '--subject',
        'p-001',
      ],
      [
        {
          event: 'device-added',
          device: 'ox-1',
          type: 'pulse-oximeter',
          schemaVersion: 1,
          site: 'home-1',
          vendor: 'acme',
          subject: 'p-001',
        },
      ],
    ],
    [['devices', 'disable', 'ox-1'], [{ event: 'device-disabled', device: 'ox-1' }]],
    [['devices', 'enable', 'ox-1'], [{ event: 'device-enabled', device: 'ox-1' }]],
    [
      ['devices', 'assign', 'ox-1', '--subject', 'p-002', '--from', '2026-03-01T12:00:00Z'],
      [{ event: 'device-assigned', device: 'ox-1', subject: 'p-002', from: '2026-03-01T12:00:00.000Z' }],
    ],
    [['devices', 'passwd', 'ox-1'], [{ event: 'device-password-set', device: 'ox-1' }]],
    [
      [
        'devices',
        'import-mosquitto',
        mosquitto,
        '--type',
        'pulse-oximeter',
        '--site',
        'home-2',
        '--vendor',
        'acme',
      ],
      [
        { event: 'device-added', device: 'ox-9', site: 'home-2', importedFrom: mosquitto },
        { event: 'device-password-set', device: 'ox-1', importedFrom: mosquitto },
      ],
    ],
    [['accounts', 'add', '--id', 'nurse-1'], [{ event: 'account-added', account: 'nurse-1', role: 'staff' }]],
    [
      [
        'projects',
        'add',
        'falls',
        '--from',
        '2026-01-01',
        '--to',
        '2026-12-31',
        '--types',
        'pulse-oximeter',
        '--fields',
        'spo2',
      ],
      [
        {
          event: 'project-added',
          project: 'falls',
          from: '2026-01-01',
          to: '2026-12-31',
          types: ['pulse-oximeter'],
          fields: ['spo2'],
        },
      ],
    ],
    [
      ['projects', 'consent', 'falls', '--subject', 'p-002', '--date', '2026-02-01'],
      [{ event: 'consent-given', project: 'falls', subject: 'p-002', on: '2026-02-01' }],
    ],
    [
      ['projects', 'consent', 'falls', '--subject', 'p-002', '--withdraw', '--date', '2026-06-01'],
      [{ event: 'consent-withdrawn', project: 'falls', subject: 'p-002', on: '2026-06-01' }],
    ],
    [
      ['tokens', 'issue', '--project', 'falls', '--researcher', 'Dr. Jensen', '--expires', '30d'],
      [
        {
          event: 'token-issued',
          token: expect.stringMatching(/^[0-9a-f]{12}$/),
          project: 'falls',
          researcher: 'Dr. Jensen',
        },
      ],
    ],
  ];

  it('records each change once, after the registry write, with who, what and when and never a secret', {
    timeout: 240_000,
  }, async () => {
    await writeRegistryFile(reg, EMPTY_REGISTRY);
    const secrets: string[] = [];
    for (const [args, expected] of changes) {
      const before = entries().length;
      const r = await cli(...args);
      expect(r, args.join(' ')).toMatchObject({ code: 0 });
      if (r.stdout.trim()) secrets.push(r.stdout.trim());
      const added = entries().slice(before);
      expect(added, args.join(' ')).toEqual(
        expected.map((e) =>
          expect.objectContaining({
            ...e,
            at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
            by: expect.stringContaining('@'),
            via: 'cli',
            registry: reg,
          }),
        ),
      );
    }
    const token = secrets.at(-1) as string;
    const issued = entries().at(-1) as { token: string };
    expect(token.startsWith(`ll_${issued.token}_`)).toBe(true);
    // Revoking names the token by its id, with its project and researcher.
    expect((await cli('tokens', 'revoke', token)).code).toBe(0);
    expect(entries().at(-1)).toMatchObject({
      event: 'token-revoked',
      token: issued.token,
      project: 'falls',
      researcher: 'Dr. Jensen',
    });
    expect((await cli('devices', 'remove', 'ox-9')).code).toBe(0);
    expect(entries().at(-1)).toMatchObject({ event: 'device-removed', device: 'ox-9' });
    // A refused change leaves no entry.
    const count = entries().length;
    expect((await cli('devices', 'disable', 'no-such')).code).not.toBe(0);
    expect(entries()).toHaveLength(count);
    expect(count).toBe(14);
    // No printed password or token, and no hash, ever reaches the log.
    const log = readFileSync(auditFile, 'utf8');
    for (const s of secrets) expect(log).not.toContain(s.slice(-20));
    expect(log).not.toContain('$7$');
    expect(await runCli(['audit', 'verify', '--registry', reg, '--data-dir', data])).toMatchObject({
      code: 0,
      stdout: `${auditFile}: 14 entries, chain intact (sealed with the audit key from line 1, head matches)\n`,
    });
  });

  it('says so when the change is made but the audit log cannot record it (LL_AUDIT_WRITE_FAILED)', {
    timeout: 60_000,
  }, async () => {
    const reg2 = join(dir, 'other.yaml');
    await writeRegistryFile(reg2, EMPTY_REGISTRY);
    // The data folder is a file: nothing can be created in it.
    const notADir = join(dir, 'not-a-folder');
    writeFileSync(notADir, '');
    const r = await runCli(['accounts', 'add', '--id', 'nurse-2', '--registry', reg2, '--data-dir', notADir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `livinglab: ${reg2} was changed (account-added), but the audit log ${join(notADir, 'audit.ndjson')} could not record it:`,
    );
    expect(readFileSync(reg2, 'utf8')).toContain('nurse-2');
  });
});
