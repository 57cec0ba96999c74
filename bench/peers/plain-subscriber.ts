// Peer (b): the subscriber a lab might write by hand. MQTT.js on Mosquitto (QoS 1), JSON.parse,
// node-influx writePoints in batches of up to 5,000 points or every second, one write at a time.
// No validation, no spool: a crash loses what is buffered.
// Usage: node --import tsx bench/peers/plain-subscriber.ts <mqtt-url> <influx-url> <db>
import { InfluxDB, type IPoint } from 'influx';
import mqtt from 'mqtt';

const [mqttUrl, influxUrl, db] = process.argv.slice(2) as [string, string, string];
const url = new URL(influxUrl);
const influx = new InfluxDB({ host: url.hostname, port: Number(url.port), database: db });
await influx.createDatabase(db);

let buffer: IPoint[] = [];
let writing = false;
const flush = async () => {
  if (writing || buffer.length === 0) return;
  writing = true;
  const batch = buffer;
  buffer = [];
  try {
    await influx.writePoints(batch);
  } catch (err) {
    console.error(`write failed, ${batch.length} points lost: ${(err as Error).message}`);
  } finally {
    writing = false;
  }
  if (buffer.length >= 5000) void flush();
};
setInterval(() => void flush(), 1000);

const client = mqtt.connect(mqttUrl, { clientId: 'plain-subscriber', clean: true });
client.on('message', (topic, payload) => {
  const parts = topic.split('/');
  const tags = { site: parts[1] ?? '', device_type: parts[2] ?? '', device_id: parts[3] ?? '' };
  let body: {
    ts: string;
    spo2: number;
    pulse: number;
    readings?: { ts: string; spo2: number; pulse: number }[];
  };
  try {
    body = JSON.parse(payload.toString());
  } catch {
    return;
  }
  for (const r of body.readings ?? [body])
    buffer.push({
      measurement: 'pulse_oximeter',
      tags,
      fields: { spo2: r.spo2, pulse: r.pulse },
      timestamp: new Date(r.ts),
    });
  if (buffer.length >= 5000) void flush();
});
client.on('connect', async () => {
  await client.subscribeAsync('lab/+/pulse-oximeter/+/telemetry', { qos: 1 });
  console.log('subscribed');
});
