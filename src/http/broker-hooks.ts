// The broker auth hooks listener: an external broker asks here whether a client may log in, publish
// or subscribe, and gets the answer the embedded broker would give, from the in-memory registry:
// logins through registry/login.ts (verified-credential cache, bounded hashing, backoff, dummy
// cost), topics through registry/acl.ts (authorizeAction). Three brokers' documented formats:
//   - EMQX 5 HTTP authentication and HTTP authorization (POST /emqx/authn, /emqx/authz):
//     https://docs.emqx.com/en/emqx/latest/access-control/authn/http.html
//     https://docs.emqx.com/en/emqx/latest/access-control/authz/http.html
//   - VerneMQ webhooks auth_on_register, auth_on_publish, auth_on_subscribe and their _m5 forms
//     (POST /vernemq, the hook named in the `vernemq-hook` header):
//     https://github.com/vernemq/vmq-docs/blob/master/plugindevelopment/webhookplugins.md
//   - mosquitto-go-auth's HTTP backend, JSON or form parameters, status-code answers
//     (POST /mosquitto-go-auth/user, /superuser, /acl):
//     https://github.com/iegomez/mosquitto-go-auth#http
// Every request must carry the hooks secret (Bearer, or Basic with the secret as password, which
// brokers that only take a URL send from `http://any:SECRET@host/...`); wrong secrets get 401 and
// are slowed per address (token-guard.ts). It never logs a password or a payload, never caches an
// answer in the broker (a disabled device must be refused at its next check), and never decides a
// rule itself.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';
import type { Denied } from '../query/access.js';
import { authorizeAction, type BrokerAction, grantedQos, mayRetain } from '../registry/acl.js';
import type { LoginResult, PasswordLogin } from '../registry/login.js';
import type { RegistrySnapshot } from '../registry/registry.js';
import { createFastify } from './server.js';
import type { TokenGuard } from './token-guard.js';

/**
 * Longest a refused login's answer is held under backoff: brokers time their hook requests out
 * after about 5 s (EMQX request_timeout, mosquitto-go-auth http_timeout), and a timed-out hook is
 * a refusal anyway; holding longer would only tie up the broker's connection pool.
 */
export const MAX_HOLD_MS = 4000;

export interface BrokerHooksDeps {
  registry: { current(): RegistrySnapshot };
  login: PasswordLogin;
  /** The secret every hook request must carry. */
  token: string;
  guard: TokenGuard;
  log: Logger;
}

/**
 * VerneMQ's auth_on_publish carries the whole message payload (base64): a body limit below the
 * broker's message size would refuse large publishes. The secret is checked before any body is read.
 */
const VERNEMQ_BODY_LIMIT = 8 * 1024 * 1024;

type Fields = Record<string, unknown>;

// Digests of equal length, so timingSafeEqual neither throws nor tells the secret's length.
const digest = (s: string) => createHash('sha256').update(s).digest();

function checkHookSecret(
  expected: string,
  authorization: string | undefined,
): Promise<{ ok: true } | Denied> {
  const deny = (reason: 'missing' | 'malformed' | 'wrong-secret', message: string): Denied => ({
    ok: false,
    status: 401,
    reason,
    message,
  });
  if (!authorization)
    return Promise.resolve(
      deny('missing', 'send the broker hooks secret (Bearer, or Basic as the password)'),
    );
  const bearer = /^Bearer (\S+)$/i.exec(authorization)?.[1];
  const basic = /^Basic (\S+)$/i.exec(authorization)?.[1];
  const basicSecret = basic && Buffer.from(basic, 'base64').toString('utf8').split(':').slice(1).join(':');
  const given = bearer ?? basicSecret;
  if (!given)
    return Promise.resolve(deny('malformed', 'the Authorization header is neither Bearer nor Basic'));
  const ok = timingSafeEqual(digest(given), digest(expected));
  return Promise.resolve(ok ? { ok: true as const } : deny('wrong-secret', 'wrong broker hooks secret'));
}

/** A field as text: brokers' templates send numbers and strings alike. */
function text(body: Fields, key: string): string | undefined {
  const v = body[key];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** A name from the broker's client, cut to what a log line needs. */
const clip = (name: string | undefined) =>
  name !== undefined && name.length > 64 ? `${name.slice(0, 64)}… (${name.length} characters)` : name;

/** Held refusals, released at once when the listener closes. */
function createHolds() {
  const held = new Set<() => void>();
  return {
    hold: (ms: number) =>
      new Promise<void>((resolve) => {
        const release = () => {
          clearTimeout(timer);
          held.delete(release);
          resolve();
        };
        const timer = setTimeout(release, Math.min(ms, MAX_HOLD_MS));
        held.add(release);
      }),
    releaseAll: () => {
      for (const release of [...held]) release();
    },
  };
}

/** The three brokers' questions, answered with one login rule and one topic rule. */
function createAnswers(deps: BrokerHooksDeps, hold: (ms: number) => Promise<void>) {
  const { log } = deps;
  const login = async (body: Fields, who: { username?: string; clientId?: string; address?: string }) => {
    const { username, clientId = '', address = '' } = who;
    const password = text(body, 'password');
    const result = await deps.login.check({ username, password, clientId, address });
    if (!result.allow) {
      const fields = { username: clip(username), clientId: clip(clientId), remoteAddress: address };
      const quiet = result.refusal === 'backoff' || result.refusal === 'busy';
      log[quiet ? 'debug' : 'warn']({ ...fields, reason: result.reason }, 'broker hook: login refused');
      if (result.delayMs > 0) await hold(result.delayMs);
    }
    return result;
  };
  const authorize = (
    username: string | undefined,
    clientId: string | undefined,
    action: BrokerAction,
    topic = '',
  ) => {
    const decision =
      username === undefined || clientId === undefined
        ? { allow: false as const, reason: 'username and client id are required' }
        : authorizeAction(deps.registry.current(), { username, clientId }, action, topic);
    if (!decision.allow)
      log.warn(
        {
          username: clip(username),
          clientId: clip(clientId),
          topic: clip(topic),
          action,
          reason: decision.reason,
        },
        'broker hook: access refused',
      );
    return decision;
  };
  return { login, authorize };
}

type Answers = ReturnType<typeof createAnswers>;

/** A login the broker could not get an answer to (the hashing queue is full): retry, not a verdict. */
const isBusy = (r: LoginResult) => !r.allow && (r.refusal === 'busy' || r.refusal === 'error');

function registerEmqx(app: FastifyInstance, answers: Answers) {
  // EMQX: 200 with {"result": "allow" | "deny"}; any other status is "ignore" (next in the chain).
  app.post('/emqx/authn', async (req, reply) => {
    const body = req.body as Fields;
    const username = text(body, 'username');
    const who = { username, clientId: text(body, 'clientid'), address: text(body, 'peerhost') };
    const result = await answers.login(body, who);
    if (isBusy(result)) return reply.code(503).send({ result: 'ignore' });
    return { result: result.allow ? 'allow' : 'deny', is_superuser: false };
  });
  app.post('/emqx/authz', async (req) => {
    const body = req.body as Fields;
    const action = text(body, 'action');
    if (action !== 'publish' && action !== 'subscribe') return { result: 'deny' };
    const decision = answers.authorize(
      text(body, 'username'),
      text(body, 'clientid'),
      action,
      text(body, 'topic'),
    );
    return { result: decision.allow ? 'allow' : 'deny' };
  });
}

const NOT_ALLOWED = { result: { error: 'not_allowed' } };

/** VerneMQ's auth_on_subscribe(_m5): each filter granted at our QoS, or refused with its own code. */
function vernemqSubscribe(answers: Answers, snapshot: RegistrySnapshot, body: Fields, m5: boolean) {
  const topics = Array.isArray(body.topics) ? (body.topics as Fields[]) : [];
  const username = text(body, 'username');
  const clientId = text(body, 'client_id');
  // 0x80 unspecified error (MQTT 3.1.1 SUBACK failure); 0x87 not authorized (MQTT 5).
  const refused = m5 ? 135 : 128;
  const granted = topics.map((t) => {
    const topic = text(t, 'topic') ?? '';
    const ok = answers.authorize(username, clientId, 'subscribe', topic).allow;
    const requested = typeof t.qos === 'number' ? t.qos : 0;
    return { topic, qos: ok ? grantedQos(snapshot, username ?? '', requested) : refused };
  });
  if (!granted.some((t) => t.qos !== refused)) return NOT_ALLOWED;
  return m5 ? { result: 'ok', modifiers: { topics: granted } } : { result: 'ok', topics: granted };
}

function registerVernemq(app: FastifyInstance, answers: Answers, registry: BrokerHooksDeps['registry']) {
  // VerneMQ: always 200; {"result": "ok"} grants, {"result": {"error": ...}} refuses.
  app.post('/vernemq', { bodyLimit: VERNEMQ_BODY_LIMIT }, async (req, reply) => {
    const body = req.body as Fields;
    const hook = req.headers['vernemq-hook'];
    const username = text(body, 'username');
    const clientId = text(body, 'client_id');
    switch (hook) {
      case 'auth_on_register':
      case 'auth_on_register_m5': {
        const result = await answers.login(body, { username, clientId, address: text(body, 'peer_addr') });
        if (isBusy(result)) return reply.code(503).send({ result: { error: 'busy' } });
        return result.allow ? { result: 'ok' } : NOT_ALLOWED;
      }
      case 'auth_on_publish':
      case 'auth_on_publish_m5': {
        const topic = text(body, 'topic') ?? '';
        if (!answers.authorize(username, clientId, 'publish', topic).allow) return NOT_ALLOWED;
        // Health data is never retained: the flag is cleared, as the embedded broker does.
        return body.retain === true && !mayRetain(topic)
          ? { result: 'ok', modifiers: { retain: false } }
          : { result: 'ok' };
      }
      case 'auth_on_subscribe':
      case 'auth_on_subscribe_m5':
        return vernemqSubscribe(answers, registry.current(), body, hook.endsWith('_m5'));
      default:
        return reply.code(400).send({ error: `vernemq-hook "${String(hook)}" is not one of the auth hooks` });
    }
  });
}

// mosquitto-go-auth's `acc`: 1 read (a message delivered), 2 write (publish), 3 both, 4 subscribe.
const ACC: Record<string, readonly BrokerAction[]> = {
  1: ['subscribe'],
  2: ['publish'],
  3: ['subscribe', 'publish'],
  4: ['subscribe'],
};

function registerMosquittoGoAuth(app: FastifyInstance, answers: Answers) {
  // Status-code answers (http_response_mode status); the body also suits http_response_mode json.
  const say = (reply: FastifyReply, ok: boolean, error = '') =>
    reply.code(ok ? 200 : 403).send({ ok, error });
  app.post('/mosquitto-go-auth/user', async (req, reply) => {
    const body = req.body as Fields;
    const result = await answers.login(body, {
      username: text(body, 'username'),
      clientId: text(body, 'clientid'),
    });
    if (isBusy(result)) return reply.code(503).send({ ok: false, error: 'busy' });
    return say(reply, result.allow, result.allow ? '' : 'not allowed');
  });
  // Nobody bypasses the ACL: staff read through the same rule as everyone.
  app.post('/mosquitto-go-auth/superuser', async (_req, reply) => say(reply, false, 'no superusers'));
  app.post('/mosquitto-go-auth/acl', async (req, reply) => {
    const body = req.body as Fields;
    const actions = ACC[text(body, 'acc') ?? ''];
    if (!actions) return reply.code(400).send({ ok: false, error: 'acc must be 1, 2, 3 or 4' });
    const [username, clientId, topic] = [text(body, 'username'), text(body, 'clientid'), text(body, 'topic')];
    const ok = actions.every((a) => answers.authorize(username, clientId, a, topic).allow);
    return say(reply, ok, ok ? '' : 'not allowed');
  });
}

export function buildBrokerHooksHttp(deps: BrokerHooksDeps): FastifyInstance {
  // Per-request lines would be one per login and topic check: only warnings and errors.
  const app = createFastify(deps.log.child({}, { level: 'warn' }));
  // mosquitto-go-auth's http_params_mode form.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  const holds = createHolds();
  app.addHook('onClose', async () => holds.releaseAll());
  // Before the body is read: a caller without the secret never gets a body parsed.
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const access = await deps.guard.guard(req, reply, () =>
      checkHookSecret(deps.token, req.headers.authorization),
    );
    if (!access) return reply;
  });
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (typeof req.body !== 'object' || req.body === null)
      return reply.code(400).send({ error: 'expected a JSON or form body' });
  });
  const answers = createAnswers(deps, holds.hold);
  registerEmqx(app, answers);
  registerVernemq(app, answers, deps.registry);
  registerMosquittoGoAuth(app, answers);
  return app;
}
