// A quick end-to-end run: D devices publish M single-reading messages each at QoS 1 (MQTT.js, real
// TCP) → embedded broker → validation → InfluxDB (real influxd). Prints acknowledged readings per
// second and the time until all of them are queryable. Not the benchmark suite (issue #7).
// Usage: npx tsx bench/quick-e2e.ts [devices=50] [messagesPerDevice=400] [batch=1] [spool=on|off]
import mqtt from 'mqtt';
import { PASSWORD, startGateway } from '../test/helpers/gateway.js';
import { startInfluxd } from '../test/helpers/influxd.js';

const devices = Number(process.argv[2] ?? 50);
const perDevice = Number(process.argv[3] ?? 400);
const batch = Number(process.argv[4] ?? 1);
const spool = (process.argv[5] ?? 'on') !== 'off';

const influx = await startInfluxd();
const ids = Array.from({ length: devices }, (_, i) => `ox-${String(i).padStart(5, '0')}`);
const gw = await startGateway({
  influxUrl: influx.url,
  devices: ids.map((id) => ({ id, type: 'pulse-oximeter', site: 'bench' })),
  config: { logLevel: 'warn', spool: { enabled: spool } },
});
const clients = await Promise.all(
  ids.map(
    (id) =>
      new Promise<mqtt.MqttClient>((resolve, reject) => {
        const c = mqtt.connect(gw.mqttUrl, {
          clientId: id,
          username: id,
          password: PASSWORD,
          reconnectPeriod: 0,
        });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      }),
  ),
);
const base = Date.now() - 3_600_000;
const t0 = performance.now();
await Promise.all(
  clients.map(async (c, d) => {
    for (let m = 0; m < perDevice; m++) {
      const readings = Array.from({ length: batch }, (_, k) => ({
        ts: new Date(base + (m * batch + k) * 10).toISOString(),
        spo2: 90 + ((m + k) % 10),
        pulse: 60 + (d % 40),
      }));
      const payload = JSON.stringify(batch === 1 ? readings[0] : { readings });
      await c.publishAsync(`lab/bench/pulse-oximeter/${ids[d]}/telemetry`, payload, { qos: 1 });
    }
  }),
);
const ackSeconds = (performance.now() - t0) / 1000;
const total = devices * perDevice * batch;
let stored = 0;
while (stored < total) {
  const r = await influx.query<{ count: number }>(gw.db, 'SELECT count(spo2) FROM pulse_oximeter');
  stored = r[0]?.count ?? 0;
  if (performance.now() - t0 > 120_000) break;
  if (stored < total) await new Promise((r) => setTimeout(r, 100));
}
const storedSeconds = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    spool,
    devices,
    perDevice,
    batch,
    readings: total,
    acknowledged_per_s: Math.round(total / ackSeconds),
    stored,
    all_stored_after_s: Number(storedSeconds.toFixed(2)),
    stored_per_s: Math.round(stored / storedSeconds),
  }),
);
await Promise.all(clients.map((c) => c.endAsync()));
await gw.stop();
await influx.stop();
