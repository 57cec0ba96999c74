// Runs a planned fleet against a gateway: one MQTT connection per device (its own credentials, a
// retained "offline" last will), QoS 1 publishes paced to simulated time, feedback collected from
// each device's `rejected` topic. Keeps only counters unless asked to remember what was
// acknowledged (for --verify) or to log it (--ack-log).
import type { Writable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import { rejectedTopic, statusTopic } from '../src/registry/topics.js';
import type { FleetPlan, PlannedDevice } from './plan.js';
import type { Credentials } from './provision.js';
import type { ExpectedReading, SimMessage } from './stream.js';

export interface RunCounters {
  devices: number;
  connected: number;
  messagesSent: number;
  messagesAcked: number;
  readingsAcked: number;
  invalidSent: number;
  rejectionsReceived: number;
  reconnects: number;
  failedPublishes: number;
}

export function emptyCounters(devices: number): RunCounters {
  return {
    devices,
    connected: 0,
    messagesSent: 0,
    messagesAcked: 0,
    readingsAcked: 0,
    invalidSent: 0,
    rejectionsReceived: 0,
    reconnects: 0,
    failedPublishes: 0,
  };
}

export interface SentInvalid {
  readonly device: string;
  readonly payload: string;
  readonly kind: string;
  readonly expectedReason: string;
  readonly at: string;
}

export interface RunRecord {
  /** device id → acknowledged readings that should be stored. */
  readonly acked: Map<string, ExpectedReading[]>;
  readonly invalid: SentInvalid[];
  /** device id → feedback messages received. */
  readonly feedback: Map<string, Record<string, unknown>[]>;
}

export interface RunOptions {
  plan: FleetPlan;
  mqttUrl: string;
  credentials: Credentials;
  /** Remember acknowledged readings and feedback (for --verify and tests). */
  remember: boolean;
  ackLog?: Writable;
  /** Most connection attempts in flight at once. */
  connectConcurrency?: number;
  onProgress?: (c: Readonly<RunCounters>) => void;
  signal?: AbortSignal;
}

/** The gateway's default limit for readings ahead of its clock (`--max-future`). */
const MAX_FUTURE_MS = 5 * 60_000;

/**
 * Sleeps that end early when the run's signal aborts, with one listener on the signal for all of
 * them: every device sleeps at once, and a listener per sleep passed Node's limit of 10
 * (MaxListenersExceededWarning in `npm run lab`). `dispose` takes that listener off again, as a
 * scheduled fleet runs many times on one signal.
 */
function createSleeper(signal: AbortSignal | undefined) {
  const waking = new Set<() => void>();
  const onAbort = () => {
    for (const wake of waking) wake();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || signal?.aborted) return resolve();
      const wake = () => {
        clearTimeout(timer);
        waking.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      waking.add(wake);
    });
  return { sleep, dispose: () => signal?.removeEventListener('abort', onAbort) };
}

export async function runFleet(opts: RunOptions): Promise<{ counters: RunCounters; record: RunRecord }> {
  const { plan } = opts;
  const { sleep, dispose } = createSleeper(opts.signal);
  const counters = emptyCounters(plan.devices.length);
  const record: RunRecord = { acked: new Map(), invalid: [], feedback: new Map() };
  const realStart = Date.now();
  const realTimeOf = (t: number) => realStart + (t - plan.fleet.start) / plan.fleet.speed;
  let connecting = 0;
  const connectWaiters: (() => void)[] = [];
  const limit = opts.connectConcurrency ?? 500;

  const connect = async (pd: PlannedDevice): Promise<MqttClient | undefined> => {
    const { device } = pd;
    while (connecting >= limit) await new Promise<void>((r) => connectWaiters.push(r));
    connecting++;
    try {
      for (let attempt = 0; attempt < 20 && !opts.signal?.aborted; attempt++) {
        const client = mqtt.connect(opts.mqttUrl, {
          clientId: device.id,
          username: device.id,
          password: opts.credentials[device.id] ?? '',
          reconnectPeriod: 0,
          connectTimeout: 30_000,
          keepalive: 120,
          will: {
            topic: statusTopic(device),
            payload: Buffer.from('offline'),
            qos: 1,
            retain: true,
          },
        });
        const ok = await new Promise<boolean>((resolve) => {
          client.once('connect', () => resolve(true));
          client.once('error', () => resolve(false));
          client.once('close', () => resolve(false));
        });
        if (ok) {
          client.on('error', () => undefined);
          const rejected = rejectedTopic(device);
          client.on('message', (topic, payload) => {
            if (topic !== rejected) return;
            counters.rejectionsReceived++;
            if (opts.remember) {
              const list = record.feedback.get(device.id) ?? [];
              list.push(JSON.parse(payload.toString()) as Record<string, unknown>);
              record.feedback.set(device.id, list);
            }
          });
          // A connection that dies half-way would leave these promises pending forever: race them.
          const status = statusTopic(device);
          const ready = await Promise.race([
            client
              .subscribeAsync(rejected, { qos: 0 })
              .then(() => client.publishAsync(status, 'online', { qos: 1, retain: true }))
              .then(
                () => true,
                () => false,
              ),
            new Promise<boolean>((r) => client.once('close', () => r(false))),
            sleep(30_000).then(() => false),
          ]);
          if (ready) return client;
        }
        client.end(true);
        await sleep(Math.min(5000, 200 * 2 ** attempt));
      }
      return undefined;
    } finally {
      connecting--;
      connectWaiters.shift()?.();
    }
  };

  const publish = (client: MqttClient, msg: SimMessage): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      // A dropped connection never acknowledges what was in flight; the listener goes with the publish.
      const onClose = () => resolve(false);
      client.once('close', onClose);
      client.publishAsync(msg.topic, msg.payload, { qos: 1 }).then(
        () => {
          client.removeListener('close', onClose);
          resolve(true);
        },
        () => {
          client.removeListener('close', onClose);
          resolve(false);
        },
      );
    });

  const runDevice = async (pd: PlannedDevice) => {
    // Every device holds its own connection from the start, as real devices do, even if its
    // first event comes much later.
    let client: MqttClient | undefined = await connect(pd);
    let online = Boolean(client);
    if (client) counters.connected++;
    for (const msg of pd.stream()) {
      if (opts.signal?.aborted) break;
      await sleep(realTimeOf(msg.t) - Date.now());
      if (opts.signal?.aborted) break;
      if (msg.disconnectBefore) {
        // Offline: the connection dies without DISCONNECT, so the broker sends the last will.
        client?.stream.destroy();
        client = undefined;
        if (online) counters.connected--;
        online = false;
        continue;
      }
      let ok = false;
      for (let attempt = 0; attempt < 3 && !ok; attempt++) {
        if (!client?.connected) {
          client?.end(true);
          if (online) counters.connected--;
          counters.reconnects++;
          client = await connect(pd);
          online = Boolean(client);
          if (!client) break;
          counters.connected++;
        }
        if (attempt === 0) counters.messagesSent++;
        ok = await publish(client, msg);
      }
      if (!ok) {
        counters.failedPublishes++;
        continue;
      }
      counters.messagesAcked++;
      // A skewed clock puts the reading ahead of the gateway's clock at the moment it arrives?
      if (msg.clockSkewMs !== undefined && Date.parse(msg.valid[0]?.ts ?? '') > Date.now() + MAX_FUTURE_MS) {
        counters.invalidSent++;
        record.invalid.push({
          device: pd.device.id,
          payload: msg.payload,
          kind: 'clock-skew',
          expectedReason: 'time',
          at: new Date(msg.t).toISOString(),
        });
        continue;
      }
      if (msg.invalid) {
        counters.invalidSent++;
        // Always kept: they are few, and they are the ground truth of the rejection path.
        record.invalid.push({
          device: pd.device.id,
          payload: msg.payload,
          ...msg.invalid,
          at: new Date(msg.t).toISOString(),
        });
        continue;
      }
      counters.readingsAcked += msg.valid.length;
      if (opts.remember) {
        const list = record.acked.get(pd.device.id) ?? [];
        list.push(...msg.valid);
        record.acked.set(pd.device.id, list);
      }
      if (opts.ackLog) {
        for (const r of msg.valid)
          opts.ackLog.write(`${JSON.stringify({ device: pd.device.id, ts: r.ts, values: r.body })}\n`);
      }
    }
    // Stay connected until the simulated period is over, as a quiet device would, then give
    // feedback for the last messages a moment to arrive and leave cleanly.
    await sleep(realTimeOf(plan.fleet.start + plan.fleet.durationMs) - Date.now());
    if (client) {
      await sleep(opts.remember ? 500 : 0);
      await client.endAsync().catch(() => undefined);
      counters.connected--;
    }
  };

  const timer = opts.onProgress ? setInterval(() => opts.onProgress?.(counters), 1000) : undefined;
  try {
    await Promise.all(plan.devices.map((pd) => runDevice(pd)));
  } finally {
    clearInterval(timer);
    dispose();
  }
  opts.onProgress?.(counters);
  return { counters, record };
}
