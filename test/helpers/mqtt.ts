// Real MQTT.js and mosquitto_pub clients for integration tests.
import { spawn } from 'node:child_process';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { PASSWORD } from './gateway.js';

export async function connectDevice(
  url: string,
  id: string,
  extra: IClientOptions = {},
): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    clientId: id,
    username: id,
    password: PASSWORD,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error(`connection of ${id} closed before CONNACK`)));
  });
  return client;
}

/** Connects and resolves the CONNACK return code (0 = accepted). */
export async function connackCode(url: string, opts: IClientOptions): Promise<number> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', (ack) => resolve(ack.returnCode ?? 0));
      client.once('error', (err) => {
        const code = (err as { code?: number }).code;
        if (typeof code === 'number') resolve(code);
        else reject(err);
      });
    });
  } finally {
    client.end(true);
  }
}

/** Collects messages of one subscription; `next(n)` waits for n of them. */
export async function collect(client: MqttClient, filter: string, qos: 0 | 1 = 0) {
  const messages: { topic: string; payload: Buffer; retain: boolean; qos: number }[] = [];
  const waiters: (() => void)[] = [];
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, retain: packet.retain, qos: packet.qos });
    for (const w of waiters.splice(0)) w();
  });
  const granted = await client.subscribeAsync(filter, { qos });
  return {
    granted,
    messages,
    async next(n: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline)
          throw new Error(`expected ${n} messages on ${filter}, got ${messages.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
      return messages.slice(0, n);
    },
  };
}

/** Runs mosquitto_pub; killed (and resolved with its signal's code -1) when it runs past `timeoutMs`. */
export async function mosquittoPub(
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('mosquitto_pub', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

/** Polls until `probe` returns a value that satisfies `done`, or fails after the timeout. */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!done(last)) {
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await probe();
  }
  return last;
}

/**
 * Polls until `probe` has returned the same value for `quietMs`, and returns it; fails when the
 * value is still changing after the timeout. For counters that stop moving once a condition holds
 * but may still take in what was already on its way (a commit under way, a PUBACK on the wire).
 */
export async function settled<T>(probe: () => T, quietMs: number, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = probe();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline)
      throw new Error(`value still changing after ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    const now = probe();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** The SUBACK return codes for one filter (128 = refused), without MQTT.js turning 128 into an error. */
export async function subackCodes(client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filter, { qos })).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: (number | { qos: number })[] } }).packet;
    if (!packet?.granted) throw err;
    return packet.granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }
}
