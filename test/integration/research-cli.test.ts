import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAuditLog } from '../../src/query/audit.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';

const _ROOT = new URL('../../', import.meta.url).pathname;
// Registry edits append to the audit log of the data folder: a temporary one, never the repository's.
const DATA_DIR = mkdtempSync(join(tmpdir(), 'll-research-data-'));
const cli = (args: string[]) => runCli(args, { env: { LIVINGLAB_DATA_DIR: DATA_DIR } });

describe('livinglab projects, tokens and audit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'll-research-'));
  const reg = join(dir, 'lab.yaml');

  it('adds a project with released fields, records consent and withdrawal, issues and revokes a token', {
    timeout: 120_000,
  }, async () => {
    await writeRegistryFile(reg, EMPTY_REGISTRY);
    const add = await cli([
      'projects',
      'add',
      'sleep',
      '--from',
      '2026-01-01',
      '--to',
      '2026-12-31',
      '--types',
      'bed-sensor,pulse-oximeter',
      '--fields',
      'heartRate,spo2',
      '--registry',
      reg,
    ]);
    expect(add).toMatchObject({ code: 0 });
    const bad = await cli([
      'projects',
      'add',
      'x',
      '--from',
      '2026-01-01',
      '--to',
      '2026-12-31',
      '--types',
      'bed-sensor',
      '--fields',
      'weight',
      '--registry',
      reg,
    ]);
    expect(bad).toMatchObject({
      code: 2,
      stderr: 'livinglab: field "weight" is not a field of bed-sensor\n',
    });
    const consent = (...flags: string[]) =>
      cli(['projects', 'consent', 'sleep', '--subject', 'p-017', ...flags, '--registry', reg]);
    expect((await consent('--date', '2026-02-01')).code).toBe(0);
    expect((await consent('--withdraw', '--date', '2026-07-01')).code).toBe(0);
    const issued = await cli([
      'tokens',
      'issue',
      '--project',
      'sleep',
      '--researcher',
      'Dr. Jensen',
      '--expires',
      '30d',
      '--registry',
      reg,
    ]);
    const token = issued.stdout.trim();
    expect(token).toMatch(/^ll_[a-z0-9]+_[A-Za-z0-9_-]+$/);
    const data = await readRegistryFile(reg);
    expect(data.projects[0]).toMatchObject({
      id: 'sleep',
      fields: ['heartRate', 'spo2'],
      consents: [{ subject: 'p-017', from: '2026-02-01', withdrawn: '2026-07-01' }],
    });
    expect(readFileSync(reg, 'utf8')).not.toContain(token.slice(token.indexOf('_', 3) + 1));
    expect(Date.parse(data.tokens[0]?.expires ?? '') - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect((await cli(['tokens', 'revoke', token, '--registry', reg])).code).toBe(0);
    expect((await readRegistryFile(reg)).tokens[0]?.revoked).toBe(true);
  });

  it('audit verify reports an intact chain, and the line of a tampered entry with exit 1', async () => {
    const file = join(dir, 'audit.ndjson');
    const log = createAuditLog({ file });
    for (const rows of [1, 2, 3])
      await log.append({
        at: new Date().toISOString(),
        researcher: 'r',
        project: 'sleep',
        via: 'cli',
        export: `e-${rows}`,
        event: 'export-ended',
        status: 'finished',
        rows,
      });
    expect(await cli(['audit', 'verify', '--file', file])).toMatchObject({
      code: 0,
      stdout: `${file}: 3 entries, chain intact (legacy SHA-256 chain, not sealed with the audit key)\n`,
    });
    writeFileSync(file, readFileSync(file, 'utf8').replace('"rows":2', '"rows":200'));
    const broken = await cli(['audit', 'verify', '--file', file]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`${file}:3:`);
  });
});
