import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canConnect,
  canPublish,
  canSubscribe,
  findIdentity,
  type Identity,
  recheckIdentity,
} from '../../src/registry/acl.js';
import {
  addAccount,
  addDevice,
  applyImportedCredentials,
  removeDevice,
  setDeviceEnabled,
} from '../../src/registry/edit.js';
import {
  parseRegistry,
  readRegistryFile,
  serialiseRegistry,
  writeRegistryFile,
} from '../../src/registry/file.js';
import { SEGMENT_MAX_LENGTH, SUBJECT_MAX_LENGTH } from '../../src/registry/ids.js';
import {
  createPasswordVerifier,
  hashSecretSync,
  parseHash,
  parseMosquittoPasswordFile,
} from '../../src/registry/passwords.js';
import { toSnapshot } from '../../src/registry/registry.js';
import { addProject, setConsent } from '../../src/registry/research.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';

const HASH = hashSecretSync('secret-secret', 10);
const base = addAccount(
  addDevice(EMPTY_REGISTRY, {
    id: 'ox-0001',
    type: 'pulse-oximeter',
    schemaVersion: 1,
    site: 'odense',
    vendor: 'acme',
    subject: 'p-017',
    interval: '60s',
    passwordHash: HASH,
  }),
  { id: 'staff-1', role: 'staff', passwordHash: HASH },
);

describe('registry file', () => {
  it('round-trips through YAML', () => {
    expect(parseRegistry(serialiseRegistry(base), 'lab.yaml')).toEqual(base);
  });
  it('names the file and line of a YAML syntax error', () => {
    expect(() => parseRegistry('version: 1\ndevices:\n  - id: a\n   type: [', 'lab.yaml')).toThrow(
      /^lab\.yaml:\d+: /,
    );
  });
  it('reads a file of only comments as the empty registry, but an empty mapping as missing its version', () => {
    expect(parseRegistry('# nothing registered yet\n', 'lab.yaml')).toEqual(EMPTY_REGISTRY);
    expect(() => parseRegistry('{}\n', 'lab.yaml')).toThrow(
      "lab.yaml:1: (top level): must have required property 'version'",
    );
  });
  it('names the line of a device that breaks the format', () => {
    const text = serialiseRegistry(base).replace('schemaVersion: 1', 'schemaVersion: one');
    const line = text.split('\n').findIndex((l) => l.includes('schemaVersion: one')) + 1;
    expect(() => parseRegistry(text, 'lab.yaml')).toThrow(
      `lab.yaml:${line}: devices.0.schemaVersion: must be integer`,
    );
  });
  it('refuses an unknown key, a duplicate id and a device at an unknown site', () => {
    expect(() => parseRegistry(`${serialiseRegistry(base)}colour: red\n`, 'lab.yaml')).toThrow(
      /additional properties \("colour"\)/,
    );
    const dup = {
      ...base,
      accounts: [{ id: 'ox-0001', role: 'staff' as const, enabled: true, passwordHash: HASH }],
    };
    const dupText = serialiseRegistry(dup);
    const dupLine = dupText.split('\n').findIndex((l) => l.startsWith('accounts:')) + 2;
    expect(() => parseRegistry(dupText, 'lab.yaml')).toThrow(
      `lab.yaml:${dupLine}: accounts id "ox-0001" is already used by device ox-0001`,
    );
    expect(() => parseRegistry(serialiseRegistry({ ...base, sites: [] }), 'lab.yaml')).toThrow(
      /names site "odense", which is not under sites/,
    );
  });
  it('writes atomically with mode 0600 and reads back', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-reg-')), 'lab.yaml');
    await writeRegistryFile(file, base);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await readRegistryFile(file)).toEqual(base);
    expect(readFileSync(file, 'utf8')).not.toContain('secret-secret');
  });
  it('reports a missing file with what to do', async () => {
    await expect(readRegistryFile('/nonexistent/lab.yaml')).rejects.toThrow(
      /does not exist; create it with `livinglab devices add`/,
    );
  });
});

describe('identifier rule (one segment rule for the file, the edits and the schemas)', () => {
  const longest = 'a'.repeat(SEGMENT_MAX_LENGTH);
  const tooLong = 'a'.repeat(SEGMENT_MAX_LENGTH + 1);
  const device = (id: string, site = 'odense', subject?: string) =>
    addDevice(EMPTY_REGISTRY, {
      id,
      type: 'pulse-oximeter',
      schemaVersion: 1,
      site,
      vendor: 'v',
      ...(subject ? { subject } : {}),
      passwordHash: HASH,
    });
  it.each([
    ['a', true],
    ['0-a', true],
    [longest, true],
    [tooLong, false],
    ['-a', false],
    ['A', false],
    ['a_b', false],
  ])('device id %s accepted: %s, alike by `devices add` and in lab.yaml', (id, ok) => {
    if (ok) {
      const data = device(id);
      expect(parseRegistry(serialiseRegistry(data), 'lab.yaml').devices[0]?.id).toBe(id);
    } else {
      expect(() => device(id)).toThrow(
        `device id "${id}" must be 1–63 characters of a–z, 0–9 and "-", starting with a letter or digit`,
      );
      const text = serialiseRegistry(device('ok')).replace('id: ok', `id: "${id}"`);
      expect(() => parseRegistry(text, 'lab.yaml')).toThrow(/devices\.0\.id: must match pattern/);
    }
  });
  it('takes a site of the full segment length and refuses one longer', () => {
    expect(device('d1', longest).sites).toEqual([{ id: longest }]);
    expect(() => device('d1', tooLong)).toThrow(/site "a{64}" must be 1–63 characters/);
  });
  it('takes subject codes up to their own limit, alike for devices and consents', () => {
    const code = 'P'.repeat(SUBJECT_MAX_LENGTH);
    expect(() => device('d1', 'odense', code)).not.toThrow();
    expect(() => device('d1', 'odense', `${code}x`)).toThrow(/subject/);
    const withProject = addProject(EMPTY_REGISTRY, {
      id: 'study',
      from: '2026-01-01',
      to: '2026-12-31',
      types: ['pulse-oximeter'],
    });
    expect(setConsent(withProject, 'study', code, { on: '2026-01-01' }).projects[0]?.consents).toHaveLength(
      1,
    );
    expect(() => setConsent(withProject, 'study', `${code}x`, { on: '2026-01-01' })).toThrow(
      `subject "${code}x" must be a participant code`,
    );
  });
});

describe('registry edits', () => {
  it('adds the site of a new device, refuses duplicates and bad ids', () => {
    expect(base.sites).toEqual([{ id: 'odense' }]);
    const added = addDevice(base, {
      id: 'ox-0002',
      type: 'pulse-oximeter',
      schemaVersion: 1,
      site: 'aarhus',
      vendor: 'v',
      passwordHash: HASH,
    });
    expect(added.sites).toEqual([{ id: 'odense' }, { id: 'aarhus' }]);
    expect(added.devices.map((d) => d.id)).toEqual(['ox-0001', 'ox-0002']);
    expect(() =>
      addDevice(added, {
        id: 'ox-0002',
        type: 't',
        schemaVersion: 1,
        site: 's',
        vendor: 'v',
        passwordHash: HASH,
      }),
    ).toThrow(/device ox-0002 already exists/);
    expect(() =>
      addDevice(base, {
        id: 'staff-1',
        type: 't',
        schemaVersion: 1,
        site: 's',
        vendor: 'v',
        passwordHash: HASH,
      }),
    ).toThrow(/account staff-1 already exists/);
    expect(() => addAccount(base, { id: 'ox-0001', role: 'staff', passwordHash: HASH })).toThrow(
      /device ox-0001 already exists/,
    );
    expect(() =>
      addDevice(base, {
        id: 'Bad Id',
        type: 't',
        schemaVersion: 1,
        site: 's',
        vendor: 'v',
        passwordHash: HASH,
      }),
    ).toThrow(/device id "Bad Id" must be/);
  });
  it('disables, enables and removes a device; unknown ids are errors', () => {
    expect(setDeviceEnabled(base, 'ox-0001', false).devices[0]?.enabled).toBe(false);
    expect(removeDevice(base, 'ox-0001').devices).toEqual([]);
    expect(() => removeDevice(base, 'nope')).toThrow(/device nope is not in the registry/);
  });
  it('applies imported credentials to known users and reports unknown ones', () => {
    const r = applyImportedCredentials(base, [
      { username: 'ox-0001', hash: '$7$101$aaaa$bbbb' },
      { username: 'ghost', hash: '$7$101$aaaa$bbbb' },
    ]);
    expect(r.updated).toEqual(['ox-0001']);
    expect(r.skipped).toMatchObject([{ username: 'ghost' }]);
    expect(r.data.devices[0]?.passwordHash).toBe('$7$101$aaaa$bbbb');
  });
});

describe('passwords ($7$ PBKDF2-SHA512)', () => {
  it('verifies a hash written by the real mosquitto_passwd, and refuses a wrong password', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-pw-')), 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', file, 'ox-0001', 'vendor-pass-1']);
    const { credentials, refused } = parseMosquittoPasswordFile(readFileSync(file, 'utf8'), file);
    expect(refused).toEqual([]);
    expect(credentials[0]?.hash).toMatch(/^\$7\$\d+\$/);
    const verifier = createPasswordVerifier();
    expect(await verifier.verify(credentials[0]?.hash ?? '', 'vendor-pass-1')).toBe(true);
    expect(await verifier.verify(credentials[0]?.hash ?? '', 'vendor-pass-2')).toBe(false);
  });
  it('accepts any iteration count and salt length (mosquitto 2.1: 1000 iterations, 64-byte salt)', async () => {
    const { pbkdf2Sync } = await import('node:crypto');
    const salt = Buffer.alloc(64, 7);
    const hash = `$7$1000$${salt.toString('base64')}$${pbkdf2Sync('pw-2.1', salt, 1000, 64, 'sha512').toString('base64')}`;
    expect(await createPasswordVerifier().verify(hash, 'pw-2.1')).toBe(true);
  });
  it('remembers successful checks only', async () => {
    const verifier = createPasswordVerifier();
    await verifier.verify(HASH, 'wrong');
    expect(verifier.cacheSize).toBe(0);
    await verifier.verify(HASH, 'secret-secret');
    await verifier.verify(HASH, 'secret-secret');
    expect(verifier.cacheSize).toBe(1);
  });
  it('refuses argon2id lines by name and keeps the rest of the file', () => {
    const text = `a:${HASH}\nb:$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA\n\n# comment\nc\n`;
    const r = parseMosquittoPasswordFile(text, 'passwd');
    expect(r.credentials.map((c) => c.username)).toEqual(['a']);
    expect(r.refused).toMatchObject([
      { line: 2, username: 'b', reason: expect.stringMatching(/argon2id/) },
      { line: 5, reason: expect.stringMatching(/expected "username:hash"/) },
    ]);
  });
  it.each(['$6$abc$def', '$7$0$a$b', '$7$x$a$b', 'plain'])('parseHash refuses %s', (h) => {
    expect(typeof parseHash(h)).toBe('string');
  });
});

describe('ACL decisions', () => {
  const snap = toSnapshot(base);
  const dev = findIdentity(snap, 'ox-0001') as Identity;
  const staff = findIdentity(snap, 'staff-1') as Identity;
  it.each([
    [dev, 'lab/odense/pulse-oximeter/ox-0001/telemetry', true],
    [dev, 'lab/odense/pulse-oximeter/ox-0001/status', true],
    [dev, 'lab/odense/pulse-oximeter/ox-0001/rejected', false],
    [dev, 'lab/odense/pulse-oximeter/ox-0002/telemetry', false],
    [dev, 'lab/aarhus/pulse-oximeter/ox-0001/telemetry', false],
    [dev, 'lab/odense/pulse-oximeter/ox-00011/telemetry', false],
    [staff, 'lab/odense/pulse-oximeter/ox-0001/telemetry', false],
  ])('publish %#', (who, topic, allowed) => {
    expect(canPublish(who, topic).allow).toBe(allowed);
  });
  it.each([
    [dev, 'lab/odense/pulse-oximeter/ox-0001/rejected', true],
    [dev, 'lab/odense/pulse-oximeter/+/rejected', false],
    [dev, 'lab/#', false],
    [dev, '#', false],
    [staff, 'lab/#', true],
    [staff, 'lab/+/+/+/status', true],
    [staff, '#', false],
    [staff, '$SYS/#', false],
  ])('subscribe %#', (who, filter, allowed) => {
    expect(canSubscribe(who, filter).allow).toBe(allowed);
  });
  it('requires the client id to be the device id, and an enabled device', () => {
    expect(canConnect(dev, 'ox-0001').allow).toBe(true);
    expect(canConnect(dev, 'ox-0002')).toMatchObject({ allow: false });
    const disabled = findIdentity(
      toSnapshot(setDeviceEnabled(base, 'ox-0001', false)),
      'ox-0001',
    ) as Identity;
    expect(canConnect(disabled, 'ox-0001')).toEqual({ allow: false, reason: 'device ox-0001 is disabled' });
    expect(findIdentity(snap, 'nobody')).toBeUndefined();
  });
  it.each([
    ['staff-1', true],
    ['staff-1:console', true],
    ['staff-1:', true],
    ['ox-0001', false],
    ['staff-1-console', false],
    ['staff-10', false],
    ['mqttjs_1234abcd', false],
    ['', false],
  ])('gives an account only its own client ids (%s)', (clientId, allowed) => {
    const decision = canConnect(staff, clientId);
    expect(decision.allow).toBe(allowed);
    if (!allowed) expect(decision).toMatchObject({ clientId: true });
  });
  it('rechecks a logged-in identity against the registry as it is now', () => {
    expect(recheckIdentity(snap, dev)).toEqual({ allow: true, identity: dev });
    const now = (data: typeof base) => recheckIdentity(toSnapshot(data), dev);
    expect(now(setDeviceEnabled(base, 'ox-0001', false))).toMatchObject({
      reason: 'device ox-0001 is disabled',
    });
    expect(now(removeDevice(base, 'ox-0001'))).toMatchObject({ reason: /no longer in the registry/ });
    const moved = { ...base, devices: base.devices.map((d) => ({ ...d, site: 'aarhus' })) };
    expect(now(moved)).toMatchObject({ reason: /moved to lab\/aarhus\/pulse-oximeter\/ox-0001\// });
    expect(
      now({ ...base, devices: base.devices.map((d) => ({ ...d, passwordHash: '$7$1$a$b' })) }),
    ).toMatchObject({ allow: false });
    const renamed = { ...base, devices: base.devices.map((d) => ({ ...d, subject: 'p-018' })) };
    expect(now(renamed)).toMatchObject({ allow: true, identity: { device: { subject: 'p-018' } } });
  });
});
