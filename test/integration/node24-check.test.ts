// The check on the supported lines this machine does not run (scripts/node24-check.sh: Node 24 and
// npm 10 from the npm registry): CI runs it by default, and a machine that cannot reach the registry
// is told plainly that nothing was checked instead of failing the run (or passing it silently).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { closedPortUrl } from '../helpers/ports.js';

const ROOT = new URL('../../', import.meta.url).pathname;

function runCheck(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['scripts/node24-check.sh', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

it('CI (.ci/run → npm install-test → scripts/test.sh) runs the Node 24 check unless LIVINGLAB_NODE24=0', async () => {
  expect(await readFile(join(ROOT, '.ci/run'), 'utf8')).toMatch(/^npm install-test$/m);
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { test: string } };
  expect(pkg.scripts.test).toBe('bash scripts/test.sh');
  const script = await readFile(join(ROOT, 'scripts/test.sh'), 'utf8');
  // On by default: only an explicit 0 turns it off (it was opt-in with LIVINGLAB_NODE24=1 before).
  expect(script).toContain(`if [ "\${LIVINGLAB_NODE24:-1}" != "0" ] && [ $# -eq 0 ]; then`);
  // Fetched in the background from the start, run after the main test run, its status counted.
  const fetch = script.indexOf('bash scripts/node24-check.sh --fetch-only &');
  const main = script.indexOf('npx vitest run');
  const check = script.indexOf('bash scripts/node24-check.sh --built || status=$?');
  expect(fetch).toBeGreaterThan(0);
  expect(main).toBeGreaterThan(fetch);
  expect(check).toBeGreaterThan(main);
});

it('offline with nothing cached: SKIPPED naming the registry and the cause, exit 0; exit 1 when required', {
  timeout: 60_000,
}, async () => {
  const cache = await mkdtemp(join(tmpdir(), 'll-tools-'));
  onTestFinished(() => rm(cache, { recursive: true, force: true }));
  const registry = `${await closedPortUrl()}/`;
  const env = { LIVINGLAB_TOOLS_CACHE: cache, npm_config_registry: registry, npm_config_fetch_retries: '0' };

  // As scripts/test.sh runs it: a fetch in the background, then the check on what was fetched.
  const fetched = await runCheck(['--fetch-only'], env);
  expect(fetched.code).toBe(0);
  expect(fetched.out).toMatch(
    new RegExp(`could not fetch node-\\S+@24 and npm@10 from ${registry}: .*ECONNREFUSED`),
  );
  const skipped = await runCheck(['--built'], env);
  expect(skipped.code).toBe(0);
  expect(skipped.out).toMatch(
    new RegExp(
      `^node24-check: SKIPPED: nothing was checked on Node 24 or npm 10: .* not in ${cache} and could not be fetched from ${registry} \\(offline\\?\\): .*ECONNREFUSED`,
      'm',
    ),
  );
  expect(skipped.out).not.toContain('RUN');

  const required = await runCheck(['--built'], { ...env, LIVINGLAB_NODE24: 'require' });
  expect(required.code).toBe(1);
  expect(required.out).toContain('LIVINGLAB_NODE24=require: failing');
});
