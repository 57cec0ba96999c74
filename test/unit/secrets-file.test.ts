// The split of the registry into lab.yaml and its secrets file: where the secrets file is, the order
// of writes (a crash between any two leaves every entry with its secret), the audit key, the refusal
// of conflicting values, and the empty-key guard of pseudonyms.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pseudonym } from '../../src/query/pseudonym.js';
import { addDevice, removeDevice, setDevicePassword } from '../../src/registry/edit.js';
import {
  missingSecrets,
  parseRegistry,
  planRegistryWrite,
  type RegistryWrite,
  readRegistryFile,
  serialiseRegistry,
  writeRegistryFile,
} from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { addProject } from '../../src/registry/research.js';
import { loadAuditKey, type Secrets, secretsFileFor } from '../../src/registry/secrets-file.js';
import { EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';

const HASH_A = hashSecretSync('password of a', 10);
const HASH_B = hashSecretSync('password of b', 10);
const device = (data: RegistryData, id: string, passwordHash: string) =>
  addDevice(data, {
    id,
    type: 'pulse-oximeter',
    schemaVersion: 1,
    site: 'home-1',
    vendor: 'acme',
    passwordHash,
  });

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('secretsFileFor', () => {
  it.each([
    ['lab.yaml', '', 'lab.secrets.yaml'],
    ['/srv/lab/reg.yml', '', '/srv/lab/reg.secrets.yaml'],
    ['registry', '', 'registry.secrets.yaml'],
    ['lab.yaml', '/run/secrets/livinglab', '/run/secrets/livinglab'],
  ])('%s (configured "%s") → %s', (registry, configured, expected) => {
    expect(secretsFileFor(registry, configured)).toBe(expected);
  });
});

describe('planRegistryWrite', () => {
  const before = addProject(device(device(EMPTY_REGISTRY, 'ox-1', HASH_A), 'ox-2', HASH_A), {
    id: 'spo2',
    from: '2026-01-01',
    to: '2026-12-31',
    types: ['pulse-oximeter'],
  });
  // One write that removes a device, adds one and changes a password at once.
  const after = setDevicePassword(device(removeDevice(before, 'ox-2'), 'ox-3', HASH_B), 'ox-1', HASH_B);
  /** The files as the first write of `before` left them. */
  const written = (): { secrets: Secrets; text: string } => {
    const [first, second] = planRegistryWrite(undefined, before);
    if (first?.to !== 'secrets' || second?.to !== 'registry') throw new Error('secrets first, then lab.yaml');
    return { secrets: first.secrets, text: second.text };
  };

  it('leaves every entry of whichever lab.yaml is on disk with its secret after each step', () => {
    const { secrets: old, text } = written();
    const steps = planRegistryWrite(old, after);
    expect(steps.map((s) => s.to)).toEqual(['secrets', 'registry', 'secrets']);
    let registryText = text;
    let secrets: Secrets = old;
    const check = () => {
      const data = parseRegistry(registryText, 'lab.yaml', { secrets, file: 'lab.secrets.yaml' });
      expect(missingSecrets(data)).toEqual({
        devices: [],
        accounts: [],
        projects: [],
        tokens: [],
        staffTokens: [],
      });
      return data;
    };
    check();
    for (const step of steps as RegistryWrite[]) {
      if (step.to === 'secrets') secrets = step.secrets;
      else registryText = step.text;
      check();
    }
    expect(check()).toEqual(after);
    // Pruned at the end: the removed device's hash is gone; the audit key was kept.
    expect(Object.keys(secrets.sections.devices ?? {}).sort()).toEqual(['ox-1', 'ox-3']);
    expect(secrets.auditKey).toBe(old.auditKey);
    expect(registryText).not.toContain('$7$');
    expect(registryText).not.toContain(before.projects[0]?.secret);
  });

  it('never writes an empty secret: a project whose key is lost stays without one', () => {
    const keyless = { ...before, projects: before.projects.map((p) => ({ ...p, secret: '' })) };
    const steps = planRegistryWrite(undefined, keyless);
    const written = steps.flatMap((s) => (s.to === 'secrets' ? [s.secrets] : []));
    for (const s of written) expect(s.sections.projects).toBeUndefined();
    const text = steps.find((s) => s.to === 'registry');
    const reread = parseRegistry(text?.to === 'registry' ? text.text : '', 'lab.yaml', {
      secrets: written.at(-1),
      file: 'lab.secrets.yaml',
    });
    expect(missingSecrets(reread).projects).toEqual(['spo2']);
  });
});

describe('reading lab.yaml with its secrets file', () => {
  it('reads an unmigrated lab.yaml whose secrets equal those in the secrets file, refuses different ones', async () => {
    const data = device(EMPTY_REGISTRY, 'ox-1', HASH_A);
    const secrets: Secrets = { sections: { devices: { 'ox-1': { passwordHash: HASH_A } } } };
    const source = { secrets, file: 'lab.secrets.yaml' };
    expect(parseRegistry(serialiseRegistry(data), 'lab.yaml', source)).toEqual(data);
    const other = serialiseRegistry(device(EMPTY_REGISTRY, 'ox-1', HASH_B));
    expect(() => parseRegistry(other, 'lab.yaml', source)).toThrow(
      /^lab\.yaml:\d+: devices ox-1 has a passwordHash here and a different one in lab\.secrets\.yaml; the gateway will not guess/,
    );
  });

  it('keeps one audit key across writes and gives it to loadAuditKey; none without a secrets file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'll-secrets-unit-'));
    dirs.push(dir);
    const reg = join(dir, 'lab.yaml');
    await expect(loadAuditKey(reg)).rejects.toThrow(
      `secrets file ${join(dir, 'lab.secrets.yaml')} does not exist`,
    );
    await writeRegistryFile(reg, device(EMPTY_REGISTRY, 'ox-1', HASH_A));
    const key = await loadAuditKey(reg);
    expect(key).toHaveLength(32);
    await writeRegistryFile(reg, device(await readRegistryFile(reg), 'ox-2', HASH_B));
    expect(await loadAuditKey(reg)).toEqual(key);
  });
});

describe('pseudonym', () => {
  it('refuses an empty project key rather than hand out pseudonyms unlike every earlier export', () => {
    expect(() => pseudonym('', 'p-1')).toThrow('no pseudonymisation secret for this project');
  });
});
