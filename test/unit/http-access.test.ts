// Pure parts of "who may see what over HTTP" (issue 16): the per-address backoff after bad tokens
// (injected clock), which ops addresses count as loopback, where the ops token comes from, and
// which tokens open the staff view.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig, loadOpsToken } from '../../src/config/load.js';
import { isLoopback } from '../../src/http/ops.js';
import { createAddressBackoff } from '../../src/http/token-guard.js';
import { authorise, authoriseStaff } from '../../src/query/access.js';
import { parseRegistry, planRegistryWrite } from '../../src/registry/file.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { addProject, issueToken, parseToken, revokeToken } from '../../src/registry/research.js';
import type { Secrets } from '../../src/registry/secrets-file.js';
import { issueStaffToken } from '../../src/registry/staff-tokens.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';

describe('address backoff after bad tokens', () => {
  const make = (t: { now: number }) =>
    createAddressBackoff({ delayAfter: 2, refuseAfter: 4, baseMs: 1000, maxMs: 4000, now: () => t.now });

  it('holds from delayAfter, refuses from refuseAfter with a doubling delay, per address', () => {
    const t = { now: 0 };
    const b = make(t);
    expect([b.fail('a'), b.fail('a'), b.fail('a')]).toEqual([0, 1000, 2000]);
    expect(b.refusedFor('a')).toBe(0);
    expect(b.fail('a')).toBe(0);
    expect(b.refusedFor('a')).toBe(1000);
    expect(b.refusedFor('b')).toBe(0);
    t.now = 1000;
    expect(b.refusedFor('a')).toBe(0);
    b.fail('a');
    expect(b.refusedFor('a')).toBe(2000);
    t.now = 3000;
    for (let i = 0; i < 5; i++) b.fail('a');
    expect(b.refusedFor('a')).toBe(4000); // capped at maxMs
  });

  it('forgets an address after a success, or after 4 × maxMs without failures', () => {
    const t = { now: 0 };
    const b = make(t);
    b.fail('a');
    b.fail('a');
    b.succeed('a');
    expect(b.fail('a')).toBe(0);
    t.now = 16_001;
    expect(b.fail('a')).toBe(0);
  });

  it('remembers at most maxKeys addresses, dropping the least recently failed', () => {
    const t = { now: 0 };
    const b = createAddressBackoff({
      delayAfter: 1,
      refuseAfter: 1,
      baseMs: 1000,
      maxMs: 1000,
      maxKeys: 2,
      now: () => t.now,
    });
    b.fail('a');
    b.fail('b');
    b.fail('c');
    expect([b.refusedFor('a'), b.refusedFor('b'), b.refusedFor('c')]).toEqual([0, 1000, 1000]);
  });
});

describe('ops listener exposure', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.5', false],
    ['gateway.lab.example', false],
  ])('%s is loopback: %s', (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });

  it('takes the ops token from LIVINGLAB_OPS_TOKEN, else from listeners.ops.tokenFile, never from the config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'll-ops-token-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'ops.token');
    await writeFile(file, 'from-the-file-0123456789\n');
    const config = loadConfig({ flags: { listeners: { ops: { tokenFile: file } } } });
    expect(loadOpsToken(config, { LIVINGLAB_OPS_TOKEN: 'from-the-env-0123456789' })).toBe(
      'from-the-env-0123456789',
    );
    expect(loadOpsToken(config, {})).toBe('from-the-file-0123456789');
    expect(loadOpsToken(loadConfig(), {})).toBeUndefined();
    await writeFile(file, '\n');
    expect(() => loadOpsToken(config, {})).toThrow(/holds no token/);
    const missing = loadConfig({ flags: { listeners: { ops: { tokenFile: join(dir, 'nope') } } } });
    expect(() => loadOpsToken(missing, {})).toThrow(/cannot read .*nope/);
    // No option carries the token itself.
    expect(() => loadConfig({ flags: { listeners: { ops: { token: 'x' } } } })).toThrow(/additional/);
  });
});

describe('staff tokens', () => {
  const verifier = createPasswordVerifier();
  const in1d = () => new Date(Date.now() + 86_400_000);
  const base = addProject(EMPTY_REGISTRY, {
    id: 'p1',
    from: '2026-01-01',
    to: '2027-01-01',
    types: ['door-sensor'],
  });
  const staff = issueStaffToken(base, { name: 'ops', expires: in1d() });
  const research = issueToken(staff.data, { project: 'p1', researcher: 'r', expires: in1d() });
  const data = research.data;
  const bearer = (t: string) => `Bearer ${t}`;

  it('open the staff view and only it; a researcher token opens only its project', async () => {
    expect(await authoriseStaff(data, verifier, bearer(staff.token))).toMatchObject({
      ok: true,
      name: 'ops',
    });
    expect(await authoriseStaff(data, verifier, bearer(research.token))).toMatchObject({
      status: 403,
      reason: 'forbidden',
    });
    expect(await authoriseStaff(data, verifier, undefined)).toMatchObject({ status: 401, reason: 'missing' });
    expect(await authoriseStaff(data, verifier, 'Bearer nonsense')).toMatchObject({
      status: 401,
      reason: 'malformed',
    });
    expect(await authorise(data, verifier, bearer(staff.token), 'p1')).toMatchObject({ status: 403 });
    expect(await authorise(data, verifier, bearer(research.token), 'p1')).toMatchObject({ ok: true });
  });

  it('are stored as a hash, survive the file round trip, and are revoked by id', async () => {
    // lab.yaml names the token; its hash goes to the secrets file, like every other secret.
    const steps = planRegistryWrite(undefined, data);
    const text = (steps.find((w) => w.to === 'registry') as { text: string }).text;
    const secrets = (steps.findLast((w) => w.to === 'secrets') as { secrets: Secrets }).secrets;
    expect(text).not.toContain((parseToken(staff.token) as { secret: string }).secret);
    expect(text).toMatch(/staffTokens:\n {2}- id: [a-z0-9]+\n {4}name: ops\n/);
    expect(text).not.toContain('$7$');
    expect(JSON.stringify(secrets)).toContain('$7$');
    const back = parseRegistry(text, 'lab.yaml', { secrets, file: 'lab.secrets.yaml' });
    expect(back.staffTokens).toEqual(data.staffTokens);
    const id = (data.staffTokens[0] as { id: string }).id;
    const revoked = revokeToken(back, id);
    expect(await authoriseStaff(revoked, verifier, bearer(staff.token))).toMatchObject({
      status: 401,
      reason: 'revoked',
    });
  });
});
