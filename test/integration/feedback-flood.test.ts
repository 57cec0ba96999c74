// A device that subscribes to its own `rejected` topic, floods the gateway with invalid batches and
// never reads its socket must neither stop the gateway nor grow its memory without bound (issue 13
// #1, docs/architecture.md, Pitfalls). The gateway runs as its own process, so a crash shows as an
// exit, not a dead test.
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { metricIn, scrapeMetrics } from '../helpers/metrics.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { connectNonReader, publishPacket } from '../helpers/non-reader.js';

vi.setConfig({ testTimeout: 180_000 });

const ATTACKER = { id: 'ox-0001', type: 'pulse-oximeter', site: 'odense' };
const OTHER = { id: 'ox-0002', type: 'pulse-oximeter', site: 'odense' };
const DB = 'feedback_flood';
const BATCHES = 40;
const CONFIG = join(tmpdir(), `ll-feedback-flood-${process.pid}.yaml`);

let influx: Influxd;
let gw: GatewayProcess;

beforeAll(async () => {
  await writeFile(CONFIG, 'feedback:\n  perMinute: 1000000\n  burst: 1000000\n');
  influx = await startInfluxd();
  gw = await createGatewayProcess({
    influxUrl: influx.url,
    db: DB,
    devices: [ATTACKER, OTHER],
    // A budget large enough that the backed-up connection, not the rate, is what stops feedback.
    args: ['--config', CONFIG],
  });
  await gw.start();
});
afterAll(async () => {
  await gw?.stop();
  await influx?.stop();
});

const metrics = () => scrapeMetrics(gw.opsPort);
const metric = (text: string, name: string, labels = '') => metricIn(text, `${name}${labels}`) ?? 0;

const invalidBatch = () =>
  // 1,000 readings of `{}`, each missing every required field: 1,000 rejections from ~3 KB.
  JSON.stringify({ readings: Array.from({ length: 1000 }, () => ({})) });

it('a device that floods invalid batches and never reads its socket cannot stop the gateway', async () => {
  const before = await metrics();
  const rss = [metric(before, 'process_resident_memory_bytes')];
  let received = metric(before, 'livinglab_messages_received_total');
  const prefix = `lab/odense/pulse-oximeter/${ATTACKER.id}`;
  const payload = invalidBatch();
  const backlogDrops = async () =>
    metric(await metrics(), 'livinglab_feedback_dropped_total', '{reason="backlog"}');

  // Twice: flood until the gateway reports the device's connection backed up, then hang up.
  for (let round = 0; round < 2; round++) {
    const dropsBefore = await backlogDrops();
    const attacker = await connectNonReader(gw.mqttUrl(), {
      clientId: ATTACKER.id,
      username: ATTACKER.id,
      filter: `${prefix}/rejected`,
    });
    for (let sent = 0; sent < 4000 && (await backlogDrops()) === dropsBefore; sent += BATCHES) {
      for (let i = 0; i < BATCHES; i++) attacker.write(publishPacket(`${prefix}/telemetry`, payload));
      received += BATCHES;
      // Every batch reaches the pipeline: a backed-up device does not stall the broker.
      await eventually(
        async () => metric(await metrics(), 'livinglab_messages_received_total'),
        (n) => n >= received,
        30_000,
      );
    }
    expect(await backlogDrops()).toBeGreaterThan(dropsBefore);
    attacker.destroy();
    rss.push(metric(await metrics(), 'process_resident_memory_bytes'));
  }

  // The gateway is still up and serves others: a valid reading gets its PUBACK and lands in InfluxDB.
  const other = await connectDevice(gw.mqttUrl(), OTHER.id);
  const ts = new Date(Date.now() - 5_000).toISOString();
  await other.publishAsync(
    `lab/odense/pulse-oximeter/${OTHER.id}/telemetry`,
    JSON.stringify({ ts, spo2: 96, pulse: 61 }),
    { qos: 1 },
  );
  await eventually(
    () => influx.query(DB, `SELECT spo2 FROM pulse_oximeter WHERE device_id = '${OTHER.id}'`),
    (r) => r.length === 1,
  );
  await other.endAsync();

  // Loose, not timed: the rejections must not turn into a backlog held in the gateway's memory. A
  // backlog would grow with each attack; V8 keeping heap after the first one does not.
  const [start = 0, first = 0, second = 0] = rss;
  const mib = (n: number) => Math.round(n / 2 ** 20);
  console.log(
    `[feedback-flood] ${received} messages; RSS ${mib(start)} → ${mib(first)} → ${mib(second)} MiB`,
  );
  expect(second - first).toBeLessThan(96 * 2 ** 20);
  expect(second - start).toBeLessThan(256 * 2 ** 20);
});
