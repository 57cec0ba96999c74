// Readiness follows InfluxDB; /metrics counters move by exactly what was sent.
import { expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';

const lab = useLab({
  devices: [{ id: 'ops-1', type: 'thermometer', site: 'ops' }],
});

const url = (path: string) => `http://127.0.0.1:${lab.gw.app.opsPort}${path}`;

it('/readyz turns 503 with the reason when influxd stops, and 200 when it is back', {
  timeout: 30_000,
}, async () => {
  expect((await fetch(url('/readyz'))).status).toBe(200);
  await lab.influx.kill();
  const down = await fetch(url('/readyz'));
  expect(down.status).toBe(503);
  expect(await down.json()).toEqual({
    status: 'not ready',
    reasons: [`InfluxDB at ${lab.influx.url} is not reachable`],
  });
  await lab.influx.restart();
  await eventually(
    async () => (await fetch(url('/readyz'))).status,
    (s) => s === 200,
  );
});

it('/metrics counters move by exactly the messages, readings and rejects sent', async () => {
  const scrape = async () => {
    const text = await (await fetch(url('/metrics'))).text();
    return (name: string) =>
      Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  };
  const before = await scrape();
  const client = await connectDevice(lab.gw.mqttUrl, 'ops-1');
  const topic = 'lab/ops/thermometer/ops-1/telemetry';
  const t = (i: number) => new Date(Date.now() - 60_000 + i * 1000).toISOString();
  for (let i = 0; i < 7; i++)
    await client.publishAsync(topic, JSON.stringify({ ts: t(i), temperature: 36.6 }), { qos: 1 });
  await client.publishAsync(topic, JSON.stringify({ ts: t(8), temperature: 50 }), { qos: 1 });
  await client.publishAsync(topic, 'not json', { qos: 1 });
  await client.publishAsync(
    topic,
    JSON.stringify({ readings: [1, 2, 3, 4, 5].map((i) => ({ ts: t(10 + i), temperature: 37 })) }),
    { qos: 1 },
  );
  await client.endAsync();
  await lab.gw.app.drain.idle(10_000);
  const after = await scrape();
  const delta = (name: string) => after(name) - before(name);
  expect(delta('livinglab_messages_received_total')).toBe(10);
  expect(delta('livinglab_readings_accepted_total')).toBe(12);
  expect(delta('livinglab_readings_rejected_total{reason="schema"}')).toBe(1);
  expect(delta('livinglab_readings_rejected_total{reason="json"}')).toBe(1);
  expect(delta('livinglab_points_written_total')).toBe(12);
});
