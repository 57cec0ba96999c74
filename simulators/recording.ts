// Recordings: NDJSON of {topic, time, payload} taken by subscribing as staff (`livinglab record`),
// and replayed with their original timing scaled (`livinglab replay`), each message published as
// the device in its topic, with that device's simulator credentials.
import { createReadStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import mqtt, { type MqttClient } from 'mqtt';
import { GatewayError } from '../src/errors.js';
import { parseReadingTopic } from '../src/registry/topics.js';
import type { Credentials } from './provision.js';

export interface RecordedMessage {
  readonly topic: string;
  readonly time: string;
  readonly payload: string;
  readonly payloadEncoding?: 'base64';
}

export async function recordMessages(opts: {
  mqttUrl: string;
  username: string;
  password: string;
  filter: string;
  out: WriteStream;
  signal: AbortSignal;
  onMessage?: (n: number) => void;
  /** Called once the broker has granted the subscription: nothing published before is recorded. */
  onSubscribed?: () => void;
}): Promise<number> {
  const client = await mqtt.connectAsync(opts.mqttUrl, {
    username: opts.username,
    password: opts.password,
    clientId: `${opts.username}:record-${process.pid}`,
    reconnectPeriod: 1000,
  });
  let n = 0;
  client.on('message', (topic, payload, packet) => {
    if (packet.retain || !parseReadingTopic(topic)) return;
    const text = payload.toString('utf8');
    const utf8 = Buffer.from(text, 'utf8').equals(payload);
    const line: RecordedMessage = {
      topic,
      time: new Date().toISOString(),
      payload: utf8 ? text : payload.toString('base64'),
      ...(utf8 ? {} : { payloadEncoding: 'base64' as const }),
    };
    opts.out.write(`${JSON.stringify(line)}\n`);
    n++;
    opts.onMessage?.(n);
  });
  const granted = await client.subscribeAsync(opts.filter, { qos: 1 });
  if (granted[0]?.qos === 128) {
    await client.endAsync();
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `the broker refused the subscription to ${opts.filter}; record needs a staff account`,
    );
  }
  opts.onSubscribed?.();
  await new Promise<void>((resolve) =>
    opts.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  await client.endAsync();
  return n;
}

export async function* readRecording(file: string): AsyncGenerator<RecordedMessage> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (!line.trim()) continue;
    let m: RecordedMessage;
    try {
      m = JSON.parse(line) as RecordedMessage;
    } catch {
      throw new GatewayError('LL_INPUT_INVALID', `${file}:${lineNo}: not a JSON line`);
    }
    if (typeof m.topic !== 'string' || typeof m.payload !== 'string' || Number.isNaN(Date.parse(m.time))) {
      throw new GatewayError('LL_INPUT_INVALID', `${file}:${lineNo}: expected {"topic", "time", "payload"}`);
    }
    yield m;
  }
}

/** Real time, or a test's own: what a replay waits on. */
export interface ReplayClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: ReplayClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * Paces recorded times onto real time at `speed`: `wait(t)` returns when the real time since the
 * first call has caught up with (t - first recorded time) / speed. A late message never waits, and
 * lateness is not carried forward (the schedule is fixed at the first message, not the previous one).
 */
export function createReplayPacer(speed: number, clock: ReplayClock = realClock) {
  let first: number | undefined;
  let realStart = 0;
  return async (t: number): Promise<void> => {
    if (first === undefined) {
      first = t;
      realStart = clock.now();
    }
    const wait = realStart + (t - first) / speed - clock.now();
    if (wait > 0) await clock.sleep(wait);
  };
}

export async function replayRecording(opts: {
  file: string;
  mqttUrl: string;
  credentials: Credentials;
  speed: number;
  clock?: ReplayClock;
  onProgress?: (sent: number, acked: number) => void;
}): Promise<{ sent: number; acked: number; skipped: number }> {
  const clients = new Map<string, MqttClient>();
  let sent = 0;
  let acked = 0;
  let skipped = 0;
  const pace = createReplayPacer(opts.speed, opts.clock);
  const pending: Promise<void>[] = [];
  try {
    for await (const m of readRecording(opts.file)) {
      const device = parseReadingTopic(m.topic)?.id;
      if (!device || !opts.credentials[device]) {
        skipped++;
        continue;
      }
      await pace(Date.parse(m.time));
      let client = clients.get(device);
      if (!client) {
        client = await mqtt.connectAsync(opts.mqttUrl, {
          clientId: device,
          username: device,
          password: opts.credentials[device],
          reconnectPeriod: 1000,
        });
        clients.set(device, client);
      }
      const payload = m.payloadEncoding === 'base64' ? Buffer.from(m.payload, 'base64') : m.payload;
      sent++;
      pending.push(
        client.publishAsync(m.topic, payload, { qos: 1 }).then(() => {
          acked++;
          opts.onProgress?.(sent, acked);
        }),
      );
    }
    await Promise.allSettled(pending);
  } finally {
    await Promise.all([...clients.values()].map((c) => c.endAsync().catch(() => undefined)));
  }
  return { sent, acked, skipped };
}
