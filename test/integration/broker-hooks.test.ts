// The broker auth hooks listener answers exactly the requests EMQX 5, VerneMQ and
// mosquitto-go-auth send (bodies built from their documentation, cited in src/http/broker-hooks.ts)
// with the embedded broker's rules, from a real gateway's registry.
import { beforeAll, describe, expect, it } from 'vitest';
import { setDeviceEnabled, setDevicePassword } from '../../src/registry/edit.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';

type Fields = Record<string, unknown>;
const SECRET = 'hooks-secret-0123456789abcdef';
const GUESS_PASSWORD = 'guess-me-if-you-can';
const lab = useLab({
  devices: [
    { id: 'hk-1', type: 'thermometer', site: 'hk' },
    { id: 'hk-2', type: 'thermometer', site: 'hk' },
    { id: 'hk-off', type: 'thermometer', site: 'hk' },
    { id: 'hk-guess', type: 'thermometer', site: 'hk' },
  ],
  staff: ['hk-staff'],
  gatewayAccounts: ['hk-gw'],
  brokerHooksToken: SECRET,
  config: {
    listeners: { brokerHooks: { enabled: true, port: 0 } },
    // The username lock after 3 failures, short delays; the shared address never slows these tests.
    auth: { usernameBackoffAfter: 3, addressBackoffAfter: 1000, backoffBase: '400ms', backoffMax: '1s' },
  },
});

const TOPIC = 'lab/hk/thermometer/hk-1/telemetry';
const OTHER = 'lab/hk/thermometer/hk-2/telemetry';
const REJECTED = 'lab/hk/thermometer/hk-1/rejected';

async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  form = false,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${lab.gw.app.externalBroker.hooksPort}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${SECRET}`,
      'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json',
      ...headers,
    },
    body: form ? new URLSearchParams(body as Record<string, string>).toString() : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  // hk-guess gets a password of its own: the test devices share one hash, and a credential verified
  // before (hk-1's) passes a username lock by design (registry/login.ts).
  const guessHash = hashSecretSync(GUESS_PASSWORD, 10);
  await lab.gw.editRegistry((d) =>
    setDevicePassword(setDeviceEnabled(d, 'hk-off', false), 'hk-guess', guessHash),
  );
  const { registry } = lab.gw.app;
  const deadline = Date.now() + 10_000;
  while (registry.current().devices.get('hk-guess')?.passwordHash !== guessHash && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
});

describe('EMQX 5 HTTP authentication and authorization', () => {
  // The body EMQX's docs configure: {"username": "${username}", "password": "${password}", ...}.
  const authn = (username: string, password: string, clientid = username) =>
    post('/emqx/authn', { username, password, clientid, peerhost: '10.0.0.7' });
  const authz = (username: string, action: string, topic: string, clientid = username) =>
    post('/emqx/authz', { username, clientid, topic, action, qos: '1', retain: 'false' });

  it('allows the right password, denies a wrong one, another client id and a disabled device', async () => {
    expect(await authn('hk-1', PASSWORD)).toEqual({
      status: 200,
      body: { result: 'allow', is_superuser: false },
    });
    expect((await authn('hk-1', 'wrong')).body).toEqual({ result: 'deny', is_superuser: false });
    expect((await authn('hk-1', PASSWORD, 'hk-2')).body).toEqual({ result: 'deny', is_superuser: false });
    expect((await authn('hk-off', PASSWORD)).body).toEqual({ result: 'deny', is_superuser: false });
    expect((await authn('nobody', PASSWORD)).body).toEqual({ result: 'deny', is_superuser: false });
  });

  it('allows a device its own topics only, and staff reading but never publishing', async () => {
    expect(await authz('hk-1', 'publish', TOPIC)).toEqual({ status: 200, body: { result: 'allow' } });
    expect((await authz('hk-1', 'publish', OTHER)).body).toEqual({ result: 'deny' });
    expect((await authz('hk-1', 'publish', REJECTED)).body).toEqual({ result: 'deny' });
    expect((await authz('hk-1', 'subscribe', REJECTED)).body).toEqual({ result: 'allow' });
    expect((await authz('hk-1', 'subscribe', 'lab/#')).body).toEqual({ result: 'deny' });
    expect((await authz('hk-1', 'publish', TOPIC, 'hk-2')).body).toEqual({ result: 'deny' });
    expect((await authz('hk-off', 'publish', 'lab/hk/thermometer/hk-off/telemetry')).body).toEqual({
      result: 'deny',
    });
    expect((await authz('hk-staff', 'subscribe', 'lab/#')).body).toEqual({ result: 'allow' });
    expect((await authz('hk-staff', 'publish', TOPIC)).body).toEqual({ result: 'deny' });
  });
});

describe('VerneMQ webhooks', () => {
  const hook = (name: string, body: unknown) => post('/vernemq', body, { 'vernemq-hook': name });
  const register = (username: string, password: string, client_id = username) => ({
    peer_addr: '10.0.0.8',
    peer_port: 51234,
    username,
    password,
    mountpoint: '',
    client_id,
    clean_session: false,
  });
  const NOT_ALLOWED = { result: { error: 'not_allowed' } };

  it('auth_on_register and auth_on_register_m5: ok for the right password, not_allowed otherwise', async () => {
    expect(await hook('auth_on_register', register('hk-1', PASSWORD))).toEqual({
      status: 200,
      body: { result: 'ok' },
    });
    expect((await hook('auth_on_register', register('hk-1', 'wrong'))).body).toEqual(NOT_ALLOWED);
    expect((await hook('auth_on_register', register('hk-off', PASSWORD))).body).toEqual(NOT_ALLOWED);
    const m5 = { ...register('hk-1', PASSWORD, 'hk-2'), clean_start: true, properties: {} };
    expect((await hook('auth_on_register_m5', m5)).body).toEqual(NOT_ALLOWED);
  });

  it('auth_on_publish: own topic ok (a retained reading loses its retain flag), another device not_allowed', async () => {
    const publish = (topic: string, retain: boolean) => ({
      username: 'hk-1',
      client_id: 'hk-1',
      mountpoint: '',
      qos: 1,
      topic,
      payload: Buffer.from('{"temperature":36.6}').toString('base64'),
      retain,
    });
    expect((await hook('auth_on_publish', publish(TOPIC, false))).body).toEqual({ result: 'ok' });
    expect((await hook('auth_on_publish', publish(TOPIC, true))).body).toEqual({
      result: 'ok',
      modifiers: { retain: false },
    });
    const status = publish('lab/hk/thermometer/hk-1/status', true);
    expect((await hook('auth_on_publish_m5', { ...status, properties: {} })).body).toEqual({ result: 'ok' });
    expect((await hook('auth_on_publish', publish(OTHER, false))).body).toEqual(NOT_ALLOWED);
  });

  it('auth_on_subscribe: own rejected topic granted at QoS 0, anything else refused per filter', async () => {
    const subscribe = (topics: { topic: string; qos: number }[]) => ({
      client_id: 'hk-1',
      mountpoint: '',
      username: 'hk-1',
      topics,
    });
    const both = [
      { topic: REJECTED, qos: 1 },
      { topic: 'lab/hk/thermometer/hk-2/rejected', qos: 1 },
    ];
    expect((await hook('auth_on_subscribe', subscribe(both))).body).toEqual({
      result: 'ok',
      topics: [
        { topic: REJECTED, qos: 0 },
        { topic: 'lab/hk/thermometer/hk-2/rejected', qos: 128 },
      ],
    });
    expect((await hook('auth_on_subscribe_m5', { ...subscribe(both), properties: {} })).body).toEqual({
      result: 'ok',
      modifiers: {
        topics: [
          { topic: REJECTED, qos: 0 },
          { topic: 'lab/hk/thermometer/hk-2/rejected', qos: 135 },
        ],
      },
    });
    expect((await hook('auth_on_subscribe', subscribe([{ topic: 'lab/#', qos: 0 }]))).body).toEqual(
      NOT_ALLOWED,
    );
  });
});

describe('mosquitto-go-auth HTTP backend', () => {
  it('/user answers 200 or 403, with JSON or form parameters', async () => {
    const user = { username: 'hk-1', password: PASSWORD, clientid: 'hk-1' };
    expect(await post('/mosquitto-go-auth/user', user)).toEqual({
      status: 200,
      body: { ok: true, error: '' },
    });
    expect((await post('/mosquitto-go-auth/user', user, {}, true)).status).toBe(200);
    expect((await post('/mosquitto-go-auth/user', { ...user, password: 'wrong' }, {}, true)).status).toBe(
      403,
    );
    expect(
      (await post('/mosquitto-go-auth/user', { ...user, username: 'hk-off', clientid: 'hk-off' })).status,
    ).toBe(403);
  });

  it('/superuser is refused to everyone, staff included', async () => {
    expect((await post('/mosquitto-go-auth/superuser', { username: 'hk-staff' })).status).toBe(403);
  });

  it('/acl: acc 2 write on own topics only, 4 subscribe and 1 read on own rejected, staff read-only', async () => {
    const acl = async (username: string, topic: string, acc: number, form = false) =>
      (
        await post(
          '/mosquitto-go-auth/acl',
          { username, clientid: username, topic, acc: String(acc) },
          {},
          form,
        )
      ).status;
    expect(await acl('hk-1', TOPIC, 2)).toBe(200);
    expect(await acl('hk-1', TOPIC, 2, true)).toBe(200);
    expect(await acl('hk-1', OTHER, 2)).toBe(403);
    expect(await acl('hk-1', REJECTED, 4)).toBe(200);
    expect(await acl('hk-1', REJECTED, 1)).toBe(200);
    expect(await acl('hk-1', OTHER, 1)).toBe(403);
    expect(await acl('hk-1', TOPIC, 3)).toBe(403);
    expect(await acl('hk-staff', 'lab/#', 4)).toBe(200);
    expect(await acl('hk-staff', TOPIC, 1)).toBe(200);
    expect(await acl('hk-staff', TOPIC, 2)).toBe(403);
    expect(await acl('hk-staff', TOPIC, 3)).toBe(403);
  });
});

describe("a gateway's own account (role gateway)", () => {
  const SHARED = '$share/livinglab/lab/+/+/+/+';
  const STATUS = 'lab/hk/thermometer/hk-2/status';
  it('EMQX: logs in under its prefix; takes the shared subscription, answers on rejected and status, nothing else', async () => {
    const ok = { status: 200, body: { result: 'allow', is_superuser: false } };
    const login = { username: 'hk-gw', password: PASSWORD, clientid: 'hk-gw:a-2', peerhost: '10.0.0.9' };
    expect(await post('/emqx/authn', login)).toEqual(ok);
    const authz = async (action: string, topic: string) =>
      ((await post('/emqx/authz', { username: 'hk-gw', clientid: 'hk-gw:a', topic, action })).body as Fields)
        .result;
    expect(await authz('subscribe', SHARED)).toBe('allow');
    expect(await authz('subscribe', 'lab/#')).toBe('allow');
    expect(await authz('publish', REJECTED)).toBe('allow');
    expect(await authz('publish', STATUS)).toBe('allow');
    expect(await authz('publish', TOPIC)).toBe('deny');
    expect(await authz('subscribe', '$share/livinglab/#')).toBe('deny');
    // Staff joining the gateways' group would take readings away from them.
    const staff = await post('/emqx/authz', {
      username: 'hk-staff',
      clientid: 'hk-staff',
      topic: SHARED,
      action: 'subscribe',
    });
    expect(staff.body).toEqual({ result: 'deny' });
  });

  it('VerneMQ: the shared subscription keeps QoS 1 (a reading at QoS 0 could be lost), publishes as for EMQX', async () => {
    const hook = (name: string, body: unknown) => post('/vernemq', body, { 'vernemq-hook': name });
    const who = { client_id: 'hk-gw:a', mountpoint: '', username: 'hk-gw' };
    const sub = await hook('auth_on_subscribe_m5', {
      ...who,
      topics: [{ topic: SHARED, qos: 1 }],
      properties: {},
    });
    expect(sub.body).toEqual({ result: 'ok', modifiers: { topics: [{ topic: SHARED, qos: 1 }] } });
    const pub = (topic: string) =>
      hook('auth_on_publish_m5', { ...who, qos: 0, topic, payload: '', retain: true });
    expect((await pub(STATUS)).body).toEqual({ result: 'ok' });
    expect((await pub(TOPIC)).body).toEqual({ result: { error: 'not_allowed' } });
  });

  it('mosquitto-go-auth: subscribe and read lab/, write rejected and status only', async () => {
    const acl = async (topic: string, acc: number) =>
      (
        await post('/mosquitto-go-auth/acl', {
          username: 'hk-gw',
          clientid: 'hk-gw:a',
          topic,
          acc: String(acc),
        })
      ).status;
    expect(await acl(SHARED, 4)).toBe(200);
    expect(await acl(TOPIC, 1)).toBe(200);
    expect(await acl(REJECTED, 2)).toBe(200);
    expect(await acl(STATUS, 2)).toBe(200);
    expect(await acl(TOPIC, 2)).toBe(403);
  });
});

describe('the hooks listener itself', () => {
  it('answers 401 to a missing or wrong secret, and takes the secret as a Basic password', async () => {
    const body = { username: 'hk-1', password: PASSWORD, clientid: 'hk-1' };
    expect((await post('/emqx/authn', body, { authorization: 'Bearer wrong-secret' })).status).toBe(401);
    expect((await post('/emqx/authn', body, { authorization: '' })).status).toBe(401);
    const basic = `Basic ${Buffer.from(`vernemq:${SECRET}`).toString('base64')}`;
    expect(await post('/emqx/authn', body, { authorization: basic })).toEqual({
      status: 200,
      body: { result: 'allow', is_superuser: false },
    });
  });

  it('slows brute force: from the 3rd wrong password answers are held, and meanwhile even the right one is refused unchecked', async () => {
    const attempt = async (password: string) => {
      const started = Date.now();
      const { body } = await post('/emqx/authn', { username: 'hk-guess', password, clientid: 'hk-guess' });
      return { result: (body as { result: string }).result, ms: Date.now() - started };
    };
    for (let i = 0; i < 2; i++) expect((await attempt(`guess-${i}`)).result).toBe('deny');
    const third = attempt('guess-2');
    // While the third refusal is held (the username locked for backoffBase, 400 ms), the right
    // password is refused without a check: guessing in parallel gains nothing.
    await new Promise((r) => setTimeout(r, 100));
    const locked = await attempt(GUESS_PASSWORD);
    const held = await third;
    expect(held.result).toBe('deny');
    expect(held.ms).toBeGreaterThanOrEqual(350);
    expect(locked.result).toBe('deny');
    const log = lab.gw.logLines().filter((l) => l.msg === 'broker hook: login refused');
    expect(log.some((l) => l.username === 'hk-guess' && String(l.reason).startsWith('too many'))).toBe(true);
    expect(JSON.stringify(log)).not.toContain(GUESS_PASSWORD);
    // Once the lock has passed, the right password is let in again.
    expect((await attempt(GUESS_PASSWORD)).result).toBe('allow');
  });

  it('refuses to start without a secret (LL_BROKER_HOOKS_TOKEN_MISSING)', async () => {
    await expect(
      lab.startGateway({ config: { listeners: { brokerHooks: { enabled: true, port: 0 } } } }),
    ).rejects.toMatchObject({ code: 'LL_BROKER_HOOKS_TOKEN_MISSING' });
  });
});
