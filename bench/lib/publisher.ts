// A publisher process: many MQTT.js connections (one per simulated device, QoS 1, real TCP) sending
// pulse-oximeter readings at a paced total rate. Runs as a child of the bench so that its CPU is
// its own process's, as a fleet's would be. Protocol over IPC: the parent sends a PublisherJob, the
// child answers {type:'ready'}, the parent sends {type:'go'}, the child answers {type:'done', result}.
import { createConnection } from 'node:net';
import mqtt, { type IClientOptions, MqttClient } from 'mqtt';
import { LatencyHistogram } from './stats.js';

export interface PublisherDevice {
  readonly id: string;
  readonly password?: string;
  readonly topic: string;
  /** The broker this device connects to, when not the job's url (sharded fronts, issue 19). */
  readonly url?: string;
}

export interface PublisherJob {
  readonly url: string;
  /** CA certificate (PEM) to trust when url is mqtts://. */
  readonly ca?: string;
  readonly devices: readonly PublisherDevice[];
  /** Readings per message: 1 sends a bare reading, more send {"readings": [...]}. */
  readonly batch: number;
  /** Messages per second from this process (all its devices together). */
  readonly messagesPerSecond: number;
  readonly durationMs: number;
  /** Leading part of durationMs whose PUBACK latencies are not recorded (start-up transient). */
  readonly warmupMs: number;
  /** How long to wait for the last PUBACKs after the last publish. */
  readonly drainTimeoutMs: number;
  /**
   * Loopback source addresses (127.0.0.x) the devices' connections are spread over, round robin:
   * one source address has about 28,000 ephemeral ports towards one broker port.
   */
  readonly sourceAddresses?: readonly string[];
}

export interface PublisherResult {
  readonly sent: number;
  readonly acked: number;
  readonly readingsAcked: number;
  readonly failed: number;
  readonly unacked: number;
  readonly disconnects: number;
  readonly publishSeconds: number;
  /** Time from the last publish to the last PUBACK. */
  readonly ackTailMs: number;
  readonly puback: { counts: number[]; max: number };
  /** This process's CPU over the run (user + system), and its peak RSS. */
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  /** Connection attempts tried again after a reset or refusal (connectWithRetries). */
  readonly connectRetries: number;
}

type Message =
  | { type: 'ready' }
  | { type: 'done'; result: PublisherResult }
  | { type: 'error'; message: string };

const send = (m: Message) => process.send?.(m);

function reading(ts: number, k: number): string {
  return `{"ts":"${new Date(ts).toISOString()}","spo2":${90 + (k % 10)},"pulse":${55 + (k % 40)}}`;
}

function connectDevice(job: PublisherJob, d: PublisherDevice, i: number): MqttClient {
  const opts: IClientOptions = {
    clientId: d.id,
    username: d.id,
    ...(d.password ? { password: d.password } : {}),
    ...(job.ca ? { ca: job.ca } : {}),
    reconnectPeriod: 0,
    connectTimeout: 60_000,
    keepalive: 120,
  };
  const url = d.url ?? job.url;
  const sources = job.sourceAddresses ?? [];
  if (sources.length === 0) return mqtt.connect(url, opts);
  // MQTT.js's TCP stream takes no local address: a stream builder of our own binds it.
  const { hostname, port } = new URL(url);
  const localAddress = sources[i % sources.length] as string;
  return new MqttClient(() => createConnection({ host: hostname, port: Number(port), localAddress }), opts);
}

/** Connection attempts refused or reset while brokers take a storm of logins, in this process. */
let connectRetries = 0;

/**
 * Connects one device; a connection reset or refused while tens of thousands connect at once (a
 * broker's accept queue overflowing) is tried again, up to 5 times, as a device would, and counted.
 */
async function connectWithRetries(
  job: PublisherJob,
  d: PublisherDevice,
  i: number,
  onClose: () => void,
): Promise<MqttClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise<MqttClient>((resolve, reject) => {
        const c = connectDevice(job, d, i);
        c.once('connect', () => {
          c.on('close', onClose);
          resolve(c);
        });
        c.once('error', (err) => {
          c.end(true);
          reject(err);
        });
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (attempt >= 5 || (code !== 'ECONNRESET' && code !== 'ECONNREFUSED')) throw err;
      connectRetries++;
      await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
}

async function connectAll(job: PublisherJob): Promise<{ clients: MqttClient[]; disconnects: () => number }> {
  let disconnects = 0;
  const clients: MqttClient[] = new Array(job.devices.length);
  let next = 0;
  const worker = async () => {
    while (next < job.devices.length) {
      const i = next++;
      const d = job.devices[i] as PublisherDevice;
      clients[i] = await connectWithRetries(job, d, i, () => disconnects++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(200, job.devices.length) }, worker));
  return { clients, disconnects: () => disconnects };
}

async function run(
  job: PublisherJob,
  clients: MqttClient[],
  disconnects: () => number,
): Promise<PublisherResult> {
  const hist = new LatencyHistogram();
  const lastTs = new Float64Array(clients.length);
  let sent = 0;
  let acked = 0;
  let failed = 0;
  let lastAckAt = 0;
  let device = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const publishOne = () => {
    const i = device;
    device = (device + 1) % clients.length;
    const c = clients[i] as MqttClient;
    const d = job.devices[i] as PublisherDevice;
    const start = Math.max(Date.now() - (job.batch - 1), (lastTs[i] as number) + 1);
    lastTs[i] = start + job.batch - 1;
    let payload: string;
    if (job.batch === 1) payload = reading(start, sent);
    else {
      const parts = new Array<string>(job.batch);
      for (let k = 0; k < job.batch; k++) parts[k] = reading(start + k, sent + k);
      payload = `{"readings":[${parts.join(',')}]}`;
    }
    const at = performance.now();
    sent++;
    c.publish(d.topic, payload, { qos: 1 }, (err) => {
      if (err) {
        failed++;
        return;
      }
      acked++;
      lastAckAt = performance.now();
      if (at - t0 >= job.warmupMs) hist.add(lastAckAt - at);
    });
  };
  const total = Math.round((job.messagesPerSecond * job.durationMs) / 1000);
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * job.messagesPerSecond));
      // Bounded bursts keep a stalled process from flooding at once; the rate shortfall shows.
      for (let n = 0; sent < due && n < 2000; n++) publishOne();
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const publishEnd = performance.now();
  const deadline = publishEnd + job.drainTimeoutMs;
  while (acked + failed < sent && performance.now() < deadline && disconnects() === 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    sent,
    acked,
    readingsAcked: acked * job.batch,
    failed,
    unacked: sent - acked - failed,
    disconnects: disconnects(),
    publishSeconds: (publishEnd - t0) / 1000,
    ackTailMs: Math.max(0, lastAckAt - publishEnd),
    puback: { counts: hist.counts, max: hist.max },
    cpuSeconds: (() => {
      const c = process.cpuUsage(cpu0);
      return (c.user + c.system) / 1e6;
    })(),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    connectRetries,
  };
}

process.once('message', async (job: PublisherJob) => {
  try {
    const { clients, disconnects } = await connectAll(job);
    send({ type: 'ready' });
    process.once('message', async () => {
      const result = await run(job, clients, disconnects);
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      send({ type: 'done', result });
      process.disconnect?.();
    });
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
    process.disconnect?.();
  }
});
