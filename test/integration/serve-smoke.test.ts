// The smallest whole-gateway run on whatever Node.js runs the tests: the built `livinglab serve`
// (bin/livinglab.js → dist/, `npm run build` first) starts, acknowledges a device's reading and
// writes it to a real influxd. scripts/node24-check.sh runs this file under Node 24 (the CLI is
// spawned with process.execPath, so it runs on the same Node) and sets LIVINGLAB_EXPECT_NODE_MAJOR
// so the test also proves which Node the gateway ran on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished, vi } from 'vitest';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { withDevices } from '../helpers/gateway.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { spawnServe } from '../helpers/serve-process.js';

vi.setConfig({ testTimeout: 90_000 });

const lab = useLab();
const DEVICE = { id: 'smoke-ox-1', type: 'pulse-oximeter', site: 'smoke' };
const BANNER =
  /MQTT on port (\d+), HTTP on https?:\/\/localhost:(\d+)\S*, ops \(\/readyz, \/metrics\) on \S+:(\d+)/;

it('the built gateway starts on this Node, acknowledges a reading and writes it to InfluxDB', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-smoke-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, withDevices(EMPTY_REGISTRY, [DEVICE]));
  const gw = spawnServe([
    ...['--registry', registry, '--data-dir', join(dir, 'data')],
    ...['--influx-url', lab.influx.url, '--influx-db', 'smoke'],
    ...['--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-host', '127.0.0.1', '--http-port', '0'],
    ...['--ops-port', '0', '--flush-interval', '100ms'],
  ]);
  onTestFinished(() => gw.kill());
  const [, mqttPort, , opsPort] = await gw.waitFor(BANNER);

  // The gateway reports the Node it runs on (prom-client's default metrics).
  const metrics = await scrapeMetrics(Number(opsPort));
  const version = /^nodejs_version_info\{version="(v[\d.]+)"/m.exec(metrics)?.[1];
  expect(version).toBe(process.version);
  const major = process.env.LIVINGLAB_EXPECT_NODE_MAJOR;
  if (major) expect(version?.split('.')[0]).toBe(`v${major}`);

  const device = await connectDevice(`mqtt://127.0.0.1:${mqttPort}`, DEVICE.id);
  onTestFinished(() => device.endAsync(true));
  const ts = new Date(Date.now() - 1000).toISOString();
  // A QoS 1 publish resolves only when the gateway's PUBACK arrives (after its spool append).
  const sent = await device.publishAsync(
    `lab/smoke/pulse-oximeter/${DEVICE.id}/telemetry`,
    JSON.stringify({ ts, spo2: 96, pulse: 71 }),
    { qos: 1 },
  );
  expect(sent).toMatchObject({ cmd: 'publish', qos: 1 });
  const rows = await eventually(
    () =>
      lab.influx
        .query<{ time: number; spo2: number; pulse: number }>(
          'smoke',
          `SELECT spo2, pulse FROM pulse_oximeter WHERE device_id = '${DEVICE.id}'`,
        )
        .catch(() => []),
    (r) => r.length > 0,
    30_000,
  );
  expect(rows).toEqual([{ time: Date.parse(ts) * 1e6, spo2: 96, pulse: 71 }]);
});
