// Issue 16, "Who may see what over HTTP": the staff status view needs a staff token, readiness and
// metrics live on the ops listener (open on loopback, token-bound elsewhere, refused without a
// token), and bad tokens from one address are slowed down, then refused, counted and logged
// without their secret, while a valid token from another address is unaffected.

import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { isGatewayError } from '../../src/errors.js';
import { addProject, issueToken, parseToken } from '../../src/registry/research.js';
import type { RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { issueStaff } from '../helpers/http-auth.js';
import { metricIn, readMetric } from '../helpers/metrics.js';
import { eventually } from '../helpers/mqtt.js';
import { openProject, untilTokens } from '../helpers/research.js';

const lab = useLab({ devices: [{ id: 'door-1', type: 'door-sensor', site: 'home-a' }] });

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET over plain node:http, so a test can choose the local address a request comes from. */
function get(host: string, port: number, path: string, opts: { token?: string; from?: string } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path,
        ...(opts.from ? { localAddress: opts.from } : {}),
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A researcher token of project "doors" (created with the first token). */
async function researcherToken(): Promise<string> {
  let token = '';
  const before = lab.gw.app.registry.current().data.tokens.length;
  await lab.gw.editRegistry((d0: RegistryData) => {
    const d = d0.projects.length > 0 ? d0 : addProject(d0, openProject('doors', ['door-sensor']));
    const r = issueToken(d, {
      project: 'doors',
      researcher: 'r',
      expires: new Date(Date.now() + 86_400_000),
    });
    token = r.token;
    return r.data;
  });
  await untilTokens(lab.gw, before + 1);
  return token;
}

describe('/api/v1/status names devices and when they were seen: staff only', () => {
  it('answers 401 with WWW-Authenticate without a token, 403 to a researcher token, 200 to a staff token', async () => {
    const port = lab.gw.app.httpPort;
    const none = await get('127.0.0.1', port, '/api/v1/status');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.body).not.toContain('door-1');
    const research = await researcherToken();
    const asResearcher = await get('127.0.0.1', port, '/api/v1/status', { token: research });
    expect(asResearcher.status).toBe(403);
    expect(asResearcher.body).not.toContain('door-1');
    // The researcher token still opens its own project, and only that.
    expect((await get('127.0.0.1', port, '/api/v1/projects/doors/devices', { token: research })).status).toBe(
      200,
    );
    const staff = await issueStaff(lab.gw, 'night-shift');
    const asStaff = await get('127.0.0.1', port, '/api/v1/status', { token: staff });
    expect(asStaff.status).toBe(200);
    expect(JSON.parse(asStaff.body).devices).toMatchObject([{ id: 'door-1', site: 'home-a' }]);
    // A staff token reads no research data.
    expect((await get('127.0.0.1', port, '/api/v1/projects/doors/devices', { token: staff })).status).toBe(
      403,
    );
  });

  it('livinglab status sends the staff token (LIVINGLAB_TOKEN or --token-file) and says what to do on 401/403', async () => {
    const url = `http://127.0.0.1:${lab.gw.app.httpPort}`;
    const staff = await issueStaff(lab.gw, 'cli');
    const viaEnv = await runCli(['status', '--url', url], { env: { LIVINGLAB_TOKEN: staff } });
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.stdout).toMatch(/^devices connected\s+0 of 1 enabled$/m);
    const file = join(lab.gw.dir, 'staff.token');
    await writeFile(file, `${staff}\n`, { mode: 0o600 });
    const viaFile = await runCli(['status', '--url', url, '--token-file', file, '--json'], {
      env: { LIVINGLAB_TOKEN: '' },
    });
    expect(viaFile.code).toBe(0);
    expect(JSON.parse(viaFile.stdout).devices[0].id).toBe('door-1');
    const without = await runCli(['status', '--url', url], { env: { LIVINGLAB_TOKEN: '' } });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain('needs a staff token for its status (401)');
    expect(without.stderr).toContain('livinglab tokens issue --staff --name NAME');
    const asResearcher = await runCli(['status', '--url', url], {
      env: { LIVINGLAB_TOKEN: await researcherToken() },
    });
    expect(asResearcher.code).toBe(2);
    expect(asResearcher.stderr).toContain('this token is not a staff token (403');
  });

  it('tokens issue --staff prints a token once, tokens list shows it without a hash, revoke shuts it out', async () => {
    const reg = ['--registry', lab.gw.registryFile];
    const issued = await runCli([
      'tokens',
      'issue',
      '--staff',
      '--name',
      'grafana-ops',
      '--expires',
      '7d',
      ...reg,
    ]);
    expect(issued.code).toBe(0);
    const token = issued.stdout.trim();
    const { id } = parseToken(token) as { id: string; secret: string };
    await eventually(
      async () => lab.gw.app.registry.current().data.staffTokens.some((t) => t.id === id),
      (known) => known,
    );
    const port = lab.gw.app.httpPort;
    expect((await get('127.0.0.1', port, '/api/v1/status', { token })).status).toBe(200);
    const listed = await runCli(['tokens', 'list', ...reg]);
    expect(listed.stdout).toMatch(new RegExp(`^${id}\\s+staff\\s+grafana-ops\\s+-\\s+\\S+\\s+active$`, 'm'));
    expect(listed.stdout).not.toContain('$7$');
    expect((await runCli(['tokens', 'revoke', id, ...reg])).code).toBe(0);
    await eventually(
      async () => (await get('127.0.0.1', port, '/api/v1/status', { token })).status,
      (s) => s === 401,
    );
    expect((await runCli(['tokens', 'list', ...reg])).stdout).toMatch(new RegExp(`^${id}\\s.*revoked$`, 'm'));
  });
});

describe('readiness and metrics are on the ops listener', () => {
  it('/readyz and /metrics are 404 on the main port and 200 on the loopback ops port; /healthz stays open', async () => {
    const { httpPort, opsPort } = lab.gw.app;
    expect((await get('127.0.0.1', httpPort, '/healthz')).status).toBe(200);
    expect((await get('127.0.0.1', httpPort, '/readyz')).status).toBe(404);
    expect((await get('127.0.0.1', httpPort, '/metrics')).status).toBe(404);
    expect((await get('127.0.0.1', opsPort, '/readyz')).status).toBe(200);
    const metrics = await get('127.0.0.1', opsPort, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metricIn(metrics.body, 'livinglab_messages_received_total')).toBe(0);
    expect((await get('127.0.0.1', opsPort, '/healthz')).status).toBe(200);
  });

  it('refuses to start with the ops listener beyond loopback and no token, naming the way out', async () => {
    const config = loadConfig({
      flags: {
        registry: lab.gw.registryFile,
        listeners: { ops: { host: '0.0.0.0', port: 0 } },
        mqtt: { port: 0 },
        http: { port: 0 },
      },
    });
    let failure: unknown;
    try {
      buildApp(config);
    } catch (err) {
      failure = err;
    }
    expect(isGatewayError(failure) && failure.code).toBe('LL_OPS_TOKEN_MISSING');
    expect((failure as Error).message).toContain('0.0.0.0');
    expect((failure as Error).message).toContain('LIVINGLAB_OPS_TOKEN');
    // The same through `livinglab serve`: exit 2 with that message, nothing started.
    const serve = await runCli(
      ['serve', '--registry', lab.gw.registryFile, '--data-dir', join(lab.gw.dir, 'serve-data')].concat([
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
      ]),
      {
        env: { LIVINGLAB_LISTENERS_OPS_HOST: '0.0.0.0', LIVINGLAB_OPS_TOKEN: '' },
      },
    );
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('the ops listener (/readyz, /metrics) would listen on 0.0.0.0');
  });

  it('beyond loopback with a token: 401 without it or with a wrong one, 200 with it', async () => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    const opsToken = 'ops-token-for-the-test-0123456789';
    const gw = await lab.startGateway({
      opsToken,
      config: { listeners: { ops: { host: external ?? '0.0.0.0', port: 0 } } },
    });
    const host = external ?? '127.0.0.1';
    for (const path of ['/readyz', '/metrics']) {
      const none = await get(host, gw.app.opsPort, path);
      expect(none.status, path).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect((await get(host, gw.app.opsPort, path, { token: 'not-the-ops-token' })).status, path).toBe(401);
      expect((await get(host, gw.app.opsPort, path, { token: opsToken })).status, path).toBe(200);
    }
    expect(JSON.stringify(gw.logLines())).not.toContain(opsToken);
    expect(JSON.stringify(gw.logLines())).not.toContain('not-the-ops-token');
  });
});

describe('bad tokens from one address', () => {
  const BRUTE = { auth: { tokenDelayAfter: 2, tokenRefuseAfter: 4, backoffBase: '1s', backoffMax: '5s' } };

  it('are held, then refused with 429 and Retry-After, counted and logged without the secret; another address is unaffected', async () => {
    const gw = await lab.startGateway({ devices: [], config: BRUTE });
    const staff = await issueStaff(gw, 'prometheus');
    const { id, secret } = parseToken(staff) as { id: string; secret: string };
    const guesses = ['A', 'B', 'C', 'D'].map((c) => `ll_${id}_${c.repeat(32)}`);
    const port = gw.app.httpPort;
    const statuses: number[] = [];
    for (const guess of guesses)
      statuses.push((await get('127.0.0.1', port, '/api/v1/status', { token: guess })).status);
    expect(statuses).toEqual([401, 401, 401, 401]);
    const refusals = gw.logLines().filter((l) => l.msg === 'HTTP credential refused');
    expect(refusals.map((l) => [l.reason, l.tokenId, l.remoteAddress])).toEqual(
      guesses.map(() => ['wrong-secret', id, '127.0.0.1']),
    );
    // Held from the second bad token on (1 s, then doubled); the fourth locks the address.
    expect(refusals.map((l) => l.delayMs)).toEqual([0, 1000, 2000, 0]);
    const locked = await get('127.0.0.1', port, '/api/v1/status', { token: staff });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Another address with a valid token is not slowed down or refused.
    const other = await get('127.0.0.1', port, '/api/v1/status', { token: staff, from: '127.0.0.2' });
    expect(other.status).toBe(200);
    const metric = (reason: string) =>
      readMetric(gw.app.opsPort, `livinglab_http_auth_failures_total{reason="${reason}"}`);
    expect(await metric('wrong-secret')).toBe(4);
    expect(await metric('refused')).toBe(1);
    const log = JSON.stringify(gw.logLines());
    expect(log).not.toContain(secret);
    for (const guess of guesses) expect(log).not.toContain(guess.split('_')[2]);
    // Once the refusal is over, the right token from the locked address works again.
    await eventually(
      async () => (await get('127.0.0.1', port, '/api/v1/status', { token: staff })).status,
      (s) => s === 200,
    );
  });

  it('do not hold up a shutdown: a held 401 is answered at once when the gateway stops', async () => {
    // A hold of ten minutes: without the release, stop() would wait for it and the test time out.
    const config = { auth: { tokenDelayAfter: 1, backoffBase: '10m', backoffMax: '10m' } };
    const gw = await lab.startGateway({ devices: [], config });
    const answer = get('127.0.0.1', gw.app.httpPort, '/api/v1/status', {
      token: `ll_0123456789ab_${'A'.repeat(32)}`,
    });
    await eventually(
      async () => gw.logLines().find((l) => l.msg === 'HTTP credential refused')?.delayMs,
      (ms) => ms === 600_000,
    );
    await gw.stop();
    expect((await answer).status).toBe(401);
  });
});
