// The decisions the embedded broker and an external broker's auth hooks share: the password login
// (registry/login.ts), the topic rule for a client the broker already let in (acl.ts
// authorizeAction), and Mosquitto's files from the registry (mosquitto-files.ts).
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBrokerHooksToken, loadConfig } from '../../src/config/load.js';
import { authorizeAction, type BrokerAction, mayRetain } from '../../src/registry/acl.js';
import { addAccount, addDevice, setDeviceEnabled } from '../../src/registry/edit.js';
import { createPasswordLogin } from '../../src/registry/login.js';
import { mosquittoHashProblem, renderMosquittoFiles } from '../../src/registry/mosquitto-files.js';
import { createPasswordVerifier, hashSecretSync } from '../../src/registry/passwords.js';
import { toSnapshot } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';

const PW = 'device password';
const HASH = hashSecretSync(PW, 10);
const device = (id: string, site = 'odense') => ({
  ...{ id, type: 'pulse-oximeter', site, schemaVersion: 1, vendor: 'acme' },
  passwordHash: HASH,
});

function registry(): RegistryData {
  let d = addDevice(EMPTY_REGISTRY, device('ox-1'));
  d = addDevice(d, device('ox-2'));
  d = addDevice(d, device('ox-off'));
  d = setDeviceEnabled(d, 'ox-off', false);
  d = addAccount(d, { id: 'staff-1', role: 'staff', passwordHash: HASH });
  return addAccount(d, { id: 'gw', role: 'gateway', passwordHash: HASH });
}

describe('authorizeAction', () => {
  const snapshot = toSnapshot(registry());
  const own = 'lab/odense/pulse-oximeter/ox-1';
  const cases: [string, string, BrokerAction, string, boolean][] = [
    ['ox-1', 'ox-1', 'publish', `${own}/telemetry`, true],
    ['ox-1', 'ox-1', 'publish', `${own}/event`, true],
    ['ox-1', 'ox-1', 'publish', `${own}/status`, true],
    ['ox-1', 'ox-1', 'publish', `${own}/rejected`, false],
    ['ox-1', 'ox-1', 'publish', 'lab/odense/pulse-oximeter/ox-2/telemetry', false],
    ['ox-1', 'ox-1', 'publish', 'lab/aarhus/pulse-oximeter/ox-1/telemetry', false],
    ['ox-1', 'ox-2', 'publish', `${own}/telemetry`, false],
    ['ox-1', 'ox-1', 'subscribe', `${own}/rejected`, true],
    ['ox-1', 'ox-1', 'subscribe', 'lab/#', false],
    ['ox-1', 'ox-1', 'subscribe', '$SYS/#', false],
    ['ox-off', 'ox-off', 'publish', 'lab/odense/pulse-oximeter/ox-off/telemetry', false],
    ['nobody', 'nobody', 'subscribe', 'lab/#', false],
    ['staff-1', 'staff-1', 'subscribe', 'lab/#', true],
    ['staff-1', 'staff-1:console', 'subscribe', 'lab/odense/#', true],
    ['staff-1', 'staff-1', 'publish', `${own}/telemetry`, false],
    ['staff-1', 'ox-1', 'subscribe', 'lab/#', false],
    // Staff taking a share of the gateways' group would take readings away from them.
    ['staff-1', 'staff-1', 'subscribe', '$share/livinglab/lab/+/+/+/+', false],
    ['gw', 'gw:a', 'subscribe', '$share/livinglab/lab/+/+/+/+', true],
    ['gw', 'gw:a-2', 'subscribe', '$share/other-group/lab/+/+/+/+', true],
    ['gw', 'gw:a', 'subscribe', 'lab/#', true],
    ['gw', 'gw:a', 'subscribe', '$share/livinglab/lab/#', false],
    ['gw', 'gw:a', 'subscribe', '$share/livinglab/$SYS/#', false],
    ['gw', 'gw:a', 'subscribe', '#', false],
    ['gw', 'gw:a', 'publish', `${own}/rejected`, true],
    ['gw', 'gw:a', 'publish', 'lab/aarhus/thermometer/th-9/status', true],
    ['gw', 'gw:a', 'publish', `${own}/telemetry`, false],
    ['gw', 'gw:a', 'publish', `${own}/event`, false],
    ['gw', 'gw:a', 'publish', 'lab/+/pulse-oximeter/ox-1/status', false],
    ['gw', 'gw:a', 'publish', 'livinglab/leader', false],
    ['gw', 'ox-1', 'subscribe', '$share/livinglab/lab/+/+/+/+', false],
  ];
  it.each(cases)('%s as client %s: %s %s → %s', (username, clientId, action, topic, allow) => {
    expect(authorizeAction(snapshot, { username, clientId }, action, topic).allow).toBe(allow);
  });

  it('only a status topic may be retained', () => {
    expect(mayRetain(`${own}/status`)).toBe(true);
    expect(mayRetain(`${own}/telemetry`)).toBe(false);
  });
});

describe('createPasswordLogin', () => {
  const make = (now = { t: 0 }) => {
    const snapshot = toSnapshot(registry());
    return createPasswordLogin({
      registry: { current: () => snapshot },
      verifier: createPasswordVerifier(),
      backoff: { usernameAfter: 2, addressAfter: 100, baseMs: 1000, maxMs: 4000, now: () => now.t },
    });
  };
  const req = (username: string, password: string, clientId = username) => ({
    username,
    password,
    clientId,
    address: '10.0.0.1',
  });

  it.each([
    ['right password', req('ox-1', PW), { allow: true }],
    ['wrong password', req('ox-1', 'nope'), { allow: false, refusal: 'wrong-password' }],
    ['unknown user', req('ghost', PW), { allow: false, refusal: 'unknown-user' }],
    ['no password', req('ox-1', ''), { allow: false, refusal: 'missing' }],
    ['disabled device', req('ox-off', PW), { allow: false, refusal: 'not-authorized' }],
    [
      'another client id',
      req('ox-1', PW, 'ox-2'),
      { allow: false, refusal: 'not-authorized', clientId: true },
    ],
    ['staff with a suffixed client id', req('staff-1', PW, 'staff-1:console'), { allow: true }],
  ] as const)('%s', async (_name, request, expected) => {
    expect(await make().check(request)).toMatchObject(expected);
  });

  it('locks a username after repeated failures: refused unchecked, for a doubling delay', async () => {
    const now = { t: 0 };
    const login = make(now);
    expect(await login.check(req('ox-2', 'a'))).toMatchObject({ refusal: 'wrong-password', delayMs: 0 });
    expect(await login.check(req('ox-2', 'b'))).toMatchObject({ refusal: 'wrong-password', delayMs: 1000 });
    expect(await login.check(req('ox-2', PW))).toMatchObject({ refusal: 'backoff', delayMs: 1000 });
    now.t = 1000;
    expect(await login.check(req('ox-2', 'c'))).toMatchObject({ refusal: 'wrong-password', delayMs: 2000 });
    now.t = 3000;
    expect(await login.check(req('ox-2', PW))).toEqual({ allow: true, identity: expect.anything() });
  });
});

describe('createPasswordLogin without the client address (a broker hook that does not send it)', () => {
  it("charges failures to the username, so one device's failures do not slow another's refusals", async () => {
    const snapshot = toSnapshot(registry());
    const login = createPasswordLogin({
      registry: { current: () => snapshot },
      verifier: createPasswordVerifier(),
      backoff: { usernameAfter: 100, addressAfter: 2, baseMs: 1000, maxMs: 4000, now: () => 0 },
    });
    const wrong = (username: string) =>
      login.check({ username, password: 'x', clientId: username, address: '' });
    for (let i = 0; i < 3; i++) await wrong('ox-1');
    expect(await wrong('ox-2')).toMatchObject({ refusal: 'wrong-password', delayMs: 0 });
  });
});

describe('renderMosquittoFiles', () => {
  it('writes each enabled device its own topics, staff read-only, and names the hashes left out', () => {
    const salt16 = randomBytes(16);
    const old = `$7$10$${salt16.toString('base64')}$${pbkdf2Sync(PW, salt16, 10, 64, 'sha512').toString('base64')}`;
    let data = addDevice(registry(), { ...device('ox-old'), passwordHash: old });
    data = addDevice(data, { ...device('ox-argon'), passwordHash: '$argon2id$v=19$m=65536,t=3,p=4$abc$def' });
    const files = renderMosquittoFiles(data);
    expect(files.passwordFile).toBe(`ox-1:${HASH}\nox-2:${HASH}\nstaff-1:${HASH}\ngw:${HASH}\n`);
    expect(files.skipped.map((s) => s.id)).toEqual(['ox-old', 'ox-argon']);
    expect(files.skipped[0]?.reason).toContain('salt is 16 bytes');
    const blocks = files.aclFile.split('\n\n').slice(1);
    expect(blocks).toEqual([
      [
        'user ox-1',
        'topic write lab/odense/pulse-oximeter/ox-1/telemetry',
        'topic write lab/odense/pulse-oximeter/ox-1/event',
        'topic write lab/odense/pulse-oximeter/ox-1/status',
        'topic read lab/odense/pulse-oximeter/ox-1/rejected',
      ].join('\n'),
      [
        'user ox-2',
        'topic write lab/odense/pulse-oximeter/ox-2/telemetry',
        'topic write lab/odense/pulse-oximeter/ox-2/event',
        'topic write lab/odense/pulse-oximeter/ox-2/status',
        'topic read lab/odense/pulse-oximeter/ox-2/rejected',
      ].join('\n'),
      'user staff-1\ntopic read lab/#',
      'user gw\ntopic read lab/#\ntopic write lab/+/+/+/rejected\ntopic write lab/+/+/+/status\n',
    ]);
  });

  it('accepts the 12-byte salts mosquitto_passwd 2.0 and the gateway write', () => {
    expect(mosquittoHashProblem(HASH)).toBeUndefined();
    expect(mosquittoHashProblem('plain')).toBe('not a $7$ PBKDF2-SHA512 hash');
  });
});

describe('loadBrokerHooksToken', () => {
  it('takes LIVINGLAB_BROKER_HOOKS_TOKEN first, then the token file; refuses a short or unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'll-hooks-token-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'from-the-file-0123456789\n');
    const config = loadConfig({ flags: { listeners: { brokerHooks: { tokenFile: file } } } });
    expect(loadBrokerHooksToken(config, { LIVINGLAB_BROKER_HOOKS_TOKEN: 'from-the-env-0123456789' })).toBe(
      'from-the-env-0123456789',
    );
    expect(loadBrokerHooksToken(config, {})).toBe('from-the-file-0123456789');
    writeFileSync(file, 'short');
    expect(() => loadBrokerHooksToken(config, {})).toThrow(/shorter than 16 characters/);
    const missing = loadConfig({ flags: { listeners: { brokerHooks: { tokenFile: join(dir, 'none') } } } });
    expect(() => loadBrokerHooksToken(missing, {})).toThrow(/cannot read/);
    expect(loadBrokerHooksToken(loadConfig({}), {})).toBeUndefined();
  });
});
