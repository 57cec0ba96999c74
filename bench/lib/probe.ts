// Publish-to-queryable: a device of its own publishes one reading every 250 ms during the load and
// polls InfluxDB until that exact point is returned by a query (one query for all waiting probes). Its readings go through the same path
// as the load's, so the figure includes validation, spool, batching and InfluxDB's own indexing.
import mqtt from 'mqtt';
import type { PublisherDevice } from './publisher.js';
import { LatencyHistogram } from './stats.js';
import { MEASUREMENT } from './systems.js';

export interface ProbeResult {
  readonly queryable: LatencyHistogram;
  readonly acked: number;
  /** Probes not queryable within the timeout, or never acknowledged. */
  readonly missing: number;
  /** Times the probe's connection closed during the rung. */
  readonly disconnects: number;
}

export async function startProbe(opts: {
  mqttUrl: string;
  /** CA certificate (PEM) to trust when mqttUrl is mqtts://. */
  ca?: string;
  device: PublisherDevice;
  influxUrl: string;
  db: string;
  everyMs?: number;
  pollMs?: number;
  timeoutMs?: number;
}): Promise<{ stop(): Promise<ProbeResult> }> {
  const { device } = opts;
  const client = await mqtt.connectAsync(opts.mqttUrl, {
    clientId: device.id,
    username: device.id,
    ...(device.password ? { password: device.password } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
    reconnectPeriod: 0,
  });
  // A saturated gateway can miss the probe's keep-alive; MQTT.js then closes the connection and, with
  // reconnecting off, a QoS 1 publish in flight never settles. Count it, and never wait on it.
  let disconnects = 0;
  client.on('close', () => disconnects++);
  const hist = new LatencyHistogram();
  // Published probes not yet seen in InfluxDB: timestamp (ms) → when its publish started.
  const waiting = new Map<number, number>();
  let acked = 0;
  let missing = 0;
  let last = 0;
  const pollMs = opts.pollMs ?? 100;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  // One query per poll for all waiting probes, so that probing does not load InfluxDB itself.
  const poll = async () => {
    if (waiting.size === 0) return;
    const oldest = Math.min(...waiting.keys());
    const q = `SELECT spo2 FROM ${MEASUREMENT} WHERE device_id = '${device.id}' AND time >= ${oldest}ms`;
    const res = await fetch(
      `${opts.influxUrl}/query?db=${encodeURIComponent(opts.db)}&epoch=ms&q=${encodeURIComponent(q)}`,
    );
    const body = (await res.json()) as { results?: { series?: { values: [number, number][] }[] }[] };
    const now = performance.now();
    for (const [ts] of body.results?.[0]?.series?.[0]?.values ?? []) {
      const started = waiting.get(ts);
      if (started === undefined) continue;
      hist.add(now - started);
      waiting.delete(ts);
    }
    for (const [ts, started] of waiting)
      if (now - started > timeoutMs) {
        waiting.delete(ts);
        missing++;
      }
  };
  let polling = Promise.resolve();
  const poller = setInterval(() => {
    polling = polling.then(poll).catch(() => undefined);
  }, pollMs);
  const publishing = new Set<Promise<void>>();
  const one = async () => {
    const ts = Math.max(Date.now(), last + 1);
    last = ts;
    const started = performance.now();
    const payload = JSON.stringify({ ts: new Date(ts).toISOString(), spo2: 97, pulse: 60 });
    await client.publishAsync(device.topic, payload, { qos: 1 });
    acked++;
    waiting.set(ts, started);
  };
  const timer = setInterval(() => {
    const p: Promise<void> = one()
      .catch(() => undefined)
      .finally(() => publishing.delete(p));
    publishing.add(p);
  }, opts.everyMs ?? 250);
  return {
    async stop() {
      clearInterval(timer);
      const deadline = performance.now() + timeoutMs;
      let settle: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(publishing),
        new Promise((r) => {
          settle = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(settle);
      const neverAcked = publishing.size;
      while (waiting.size > 0 && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, pollMs));
      clearInterval(poller);
      await polling;
      missing += waiting.size + neverAcked;
      const closed = disconnects;
      client.end(true);
      return { queryable: hist, acked, missing, disconnects: closed };
    },
  };
}
