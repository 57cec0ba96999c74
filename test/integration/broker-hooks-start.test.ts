// A gateway whose own broker login is answered by its own auth hooks (the compose profile
// `cluster`: EMQX asks gateway-1's hooks about every login, gateway-1's included) must have its
// hooks listening before it logs in to the broker. The broker here accepts the gateway's TCP
// connection and holds its CONNECT unanswered, as EMQX does while its HTTP authentication is
// pending; the test then sends the request EMQX would send, to the real gateway's hooks.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { addAccount } from '../../src/registry/edit.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { PASSWORD } from '../helpers/gateway.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { freePort } from '../helpers/ports.js';

const SECRET = 'hooks-secret-start-order-0123456789';
const GATEWAY_ACCOUNT = 'gw-account';

let influx: Influxd;
beforeAll(async () => {
  influx = await startInfluxd();
});
afterAll(async () => {
  await influx?.stop();
});

/** A broker that takes connections and answers nothing yet (a login waiting on its auth hook). */
async function holdingBroker() {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connections: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

it('answers the broker hooks while its own login to the external broker is still waiting', async () => {
  const broker = await holdingBroker();
  const dir = await mkdtemp(join(tmpdir(), 'll-hooks-start-'));
  const registry = join(dir, 'lab.yaml');
  const hash = hashSecretSync(PASSWORD, 10);
  await writeRegistryFile(
    registry,
    addAccount(EMPTY_REGISTRY, { id: GATEWAY_ACCOUNT, role: 'staff', passwordHash: hash }),
  );
  const hooksPort = await freePort();
  const config = loadConfig({
    flags: {
      registry,
      dataDir: join(dir, 'data'),
      source: 'external',
      external: {
        url: broker.url,
        username: GATEWAY_ACCOUNT,
        clientId: `${GATEWAY_ACCOUNT}:gw1`,
        connections: 1,
      },
      listeners: { brokerHooks: { enabled: true, port: hooksPort }, ops: { port: 0 } },
      http: { port: 0, host: '127.0.0.1' },
      influx: { url: influx.url, db: 'hooks_start' },
    },
  });
  const app = buildApp(config, {
    log: createLogger({ level: 'silent' }),
    brokerHooksToken: SECRET,
    brokerPassword: PASSWORD,
  });
  const starting = app.start().then(
    () => 'started',
    (err: Error) => err.message,
  );
  try {
    // EMQX's HTTP authentication request for the gateway's own login (src/http/broker-hooks.ts).
    const ask = () =>
      fetch(`http://127.0.0.1:${hooksPort}/emqx/authn`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          username: GATEWAY_ACCOUNT,
          password: PASSWORD,
          clientid: `${GATEWAY_ACCOUNT}:gw1`,
        }),
      }).then(
        async (res) => ({ status: res.status, body: (await res.json()) as unknown }),
        () => undefined,
      );
    const sleep = () => new Promise((r) => setTimeout(r, 100));
    const deadline = Date.now() + 15_000;
    // The gateway's CONNECT is at the broker, held there: now EMQX asks the hooks about it.
    while (broker.connections() === 0 && Date.now() < deadline) await sleep();
    let answer = await ask();
    while (!answer && Date.now() < deadline) {
      await sleep();
      answer = await ask();
    }
    expect(broker.connections()).toBeGreaterThan(0);
    expect(answer).toEqual({ status: 200, body: { result: 'allow', is_superuser: false } });
  } finally {
    await app.stop();
    await broker.close();
    // start() settles once the source gives up its first session (within its 30-s limit); the
    // gateway is stopped either way, so the test does not wait for it.
    void starting;
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);
