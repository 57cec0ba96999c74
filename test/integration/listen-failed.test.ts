// A port already in use (issue 15, untested path 10; issue 17): start() fails with LL_LISTEN_FAILED
// naming the address and the flag to change, and stop() then returns. It used to spin at 100 % of
// a core: the drain kept reading the spool closed under it, so the process never stopped.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { isGatewayError } from '../../src/errors.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { closedPortUrl } from '../helpers/ports.js';

async function occupiedPort(): Promise<number> {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
  onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const address = blocker.address();
  return typeof address === 'object' && address ? address.port : 0;
}

it.each([
  ['mqtt', '--mqtt-port'],
  ['http', '--http-port'],
  ['ws', '--ws-port'],
  ['ops', '--ops-port'],
] as const)(
  'refuses to start when the %s port is taken, naming %s, and stops cleanly',
  async (which, flag) => {
    const dir = await mkdtemp(join(tmpdir(), 'll-listen-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const registry = join(dir, 'lab.yaml');
    await writeRegistryFile(registry, EMPTY_REGISTRY);
    const taken = await occupiedPort();
    const config = loadConfig({
      flags: {
        registry,
        dataDir: join(dir, 'data'),
        logLevel: 'silent',
        mqtt: { port: which === 'mqtt' ? taken : 0, host: '127.0.0.1' },
        http: { port: which === 'http' ? taken : 0, host: '127.0.0.1' },
        listeners: {
          ws: { enabled: which === 'ws', port: which === 'ws' ? taken : 0, host: '127.0.0.1' },
          ops: { port: which === 'ops' ? taken : 0 },
        },
        influx: { url: await closedPortUrl() },
      },
    });
    const app = buildApp(config);
    const failure = await app.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isGatewayError(failure) && failure.code).toBe('LL_LISTEN_FAILED');
    expect((failure as Error).message).toContain(`127.0.0.1:${taken}`);
    expect((failure as Error).message).toContain(flag);
    // Resolves (the test's timeout would end a hang only if the event loop were free, so the
    // outcome is the resolution itself, and a log-free stop within the default timeout).
    await expect(app.stop()).resolves.toBeUndefined();
  },
);

it('refuses to start a secure WebSocket listener without a certificate, naming the options, and stops cleanly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-listen-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, EMPTY_REGISTRY);
  const config = loadConfig({
    flags: {
      registry,
      dataDir: join(dir, 'data'),
      logLevel: 'silent',
      mqtt: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1' },
      listeners: { wss: { enabled: true, port: 0, host: '127.0.0.1' } },
      influx: { url: await closedPortUrl() },
    },
  });
  const app = buildApp(config);
  const failure = await app.start().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isGatewayError(failure) && failure.code).toBe('LL_CONFIG_INVALID');
  expect((failure as Error).message).toContain('tls.cert and tls.key (--tls-cert, --tls-key)');
  await expect(app.stop()).resolves.toBeUndefined();
});
