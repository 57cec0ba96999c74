// The publish-to-queryable probe of the e2e bench (bench/lib/probe.ts) against a broker that drops
// its connection mid-publish, as a saturated gateway does when it misses a keep-alive: the rung must
// end, with the probe counted missing and the disconnect reported, instead of waiting forever on a
// QoS 1 publish that can never be acknowledged (it hung a 200,000 readings/s rung for 10 minutes).
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { startProbe } from '../../bench/lib/probe.js';
import { eventually } from '../helpers/mqtt.js';
import { closedPortUrl } from '../helpers/ports.js';

let server: Server | undefined;
let broker: Aedes | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await new Promise<void>((r) => (broker ? broker.close(() => r()) : r()));
});

describe('bench probe', () => {
  it('ends when the broker closes the connection before acknowledging a probe', async () => {
    let publishesSeen = 0;
    broker = await Aedes.createBroker({
      // Never authorise, never answer: close the connection as the publish arrives.
      authorizePublish: (client) => {
        publishesSeen++;
        client?.close();
      },
    });
    const aedes = broker;
    server = createServer((socket) => aedes.handle(socket));
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const probe = await startProbe({
      mqttUrl: `mqtt://127.0.0.1:${port}`,
      device: { id: 'probe-1', topic: 'lab/devices/probe-1/readings' },
      influxUrl: await closedPortUrl(), // nothing listens: no probe is ever queryable
      db: 'none',
      everyMs: 50,
      timeoutMs: 1_000,
    });
    // The probe has published and been cut off: wait for that, not for a fixed time.
    await eventually(
      async () => publishesSeen,
      (n) => n >= 1,
    );
    // Before the fix, stop() never returned and the test ran into its timeout.
    const result = await probe.stop();
    expect(result.acked).toBe(0);
    expect(result.missing).toBeGreaterThanOrEqual(1);
    expect(result.disconnects).toBeGreaterThanOrEqual(1);
  }, 20_000);
});
