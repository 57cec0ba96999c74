// The messages one simulated device sends, in time order: its model's readings, shaped by the
// scenario (battery drain, clock skew, an offline window flushed as one batch, deliberately invalid
// payloads), each with what the gateway should make of it. Pure and deterministic: it depends only
// on the fleet, the scenario, the seed and the device id.

import { deviceTopic, type ReadingChannel } from '../src/registry/topics.js';
import type { Fleet, FleetDevice } from './fleet.js';
import type { ModelContext, ModelReading } from './models/common.js';
import { BATTERY_DAYS, MODELS } from './models/index.js';
import { createRng, hashSeed, type Rng } from './random.js';
import type { Resident } from './resident.js';
import type { InvalidKind, Scenario } from './scenario.js';

/** A reading the gateway should store, as sent. */
export interface ExpectedReading {
  readonly ts: string;
  readonly body: Record<string, unknown>;
}

export interface SimMessage {
  /** Simulated time at which the device sends it. */
  readonly t: number;
  readonly topic: string;
  readonly payload: string;
  /** Readings in it that the gateway should store (empty for a deliberately invalid payload). */
  readonly valid: readonly ExpectedReading[];
  /** Set when the payload is deliberately invalid: what kind, and the reason expected back. */
  readonly invalid?: {
    readonly kind: InvalidKind | 'clock-skew';
    readonly expectedReason: 'json' | 'schema' | 'time';
  };
  /** The device drops its connection before this message (an offline window starts). */
  readonly disconnectBefore?: boolean;
  /** The device clock is off by this much: a timestamp too far ahead of the gateway clock is refused ("time"). */
  readonly clockSkewMs?: number;
}

const MAX_BATCH = 1000;

function corrupt(kind: InvalidKind, body: Record<string, unknown>, rng: Rng): string {
  const keys = Object.keys(body).filter((k) => k !== 'ts');
  const numeric = keys.filter((k) => typeof body[k] === 'number');
  switch (kind) {
    case 'json': {
      const text = JSON.stringify(body);
      return text.slice(0, Math.max(1, Math.floor(text.length * rng.uniform(0.3, 0.9))));
    }
    case 'range': {
      const key = numeric[0];
      if (key) return JSON.stringify({ ...body, [key]: 1_000_000 });
      return JSON.stringify({ ...body, [keys[0] ?? 'x']: 'out of range' });
    }
    case 'missing': {
      const { ts: _ts, ...rest } = body;
      return JSON.stringify(rest);
    }
    case 'type': {
      const key = keys[0] ?? 'ts';
      return JSON.stringify({ ...body, [key]: typeof body[key] === 'string' ? 42 : 'forty-two' });
    }
  }
}

export interface DeviceStreamOptions {
  fleet: Fleet;
  scenario: Scenario;
  device: FleetDevice;
  resident: Resident;
  channel: ReadingChannel;
}

export function* deviceStream(opts: DeviceStreamOptions): Generator<SimMessage, void, undefined> {
  const { fleet, scenario, device, resident } = opts;
  const end = fleet.start + fleet.durationMs;
  const rng = createRng(hashSeed(fleet.seed, 'device', device.id));
  const invalidRng = createRng(hashSeed(fleet.seed, 'invalid', device.id));
  const mine = scenario.events.filter((e) => e.device === device.id);
  const drain = mine.find((e) => e.type === 'battery-drain');
  const skews = mine.filter((e) => e.type === 'clock-skew');
  const offline = mine
    .filter((e) => e.type === 'offline')
    .map((e) => ({ from: fleet.start + e.atMs, to: fleet.start + e.atMs + e.durationMs }));
  const lifeDays = BATTERY_DAYS[device.type];
  const initial = rng.uniform(55, 100);
  const normalLevel = (t: number) => initial - ((t - fleet.start) / 86_400_000 / (lifeDays ?? 1)) * 100;
  const battery = (t: number): number | undefined => {
    if (lifeDays === undefined) return undefined;
    let level = normalLevel(t);
    if (drain) {
      const from = fleet.start + drain.atMs;
      if (t >= from) {
        const at = normalLevel(from);
        level = at - ((t - from) / Math.max(1, drain.durationMs)) * at;
      }
    }
    return Math.max(0, Math.min(100, Math.round(level)));
  };
  const ctx: ModelContext = {
    deviceId: device.id,
    rng,
    resident,
    start: fleet.start,
    end,
    intervalMs: device.intervalMs,
    ...(device.place ? { place: device.place } : {}),
    battery,
    hourOf: (t) => ((((t + fleet.tzOffsetMs) % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000,
  };
  const model = MODELS[device.type];
  if (!model) throw new Error(`no simulator model for device type ${device.type}`);
  const topic = deviceTopic(device, opts.channel);
  const skewAt = (t: number) =>
    skews.find((e) => t >= fleet.start + e.atMs && t < fleet.start + e.atMs + e.durationMs)?.skewMs ?? 0;
  let held: { t: number; reading: ExpectedReading }[] = [];
  let window = 0;

  const flush = function* (at: number): Generator<SimMessage> {
    for (let i = 0; i < held.length; i += MAX_BATCH) {
      const chunk = held.slice(i, i + MAX_BATCH).map((h) => h.reading);
      yield { t: at, topic, payload: JSON.stringify({ readings: chunk.map((r) => r.body) }), valid: chunk };
    }
    held = [];
  };

  for (const r of model(ctx) as Iterable<ModelReading>) {
    // A device whose battery is empty says nothing more.
    if (battery(r.t) === 0) {
      yield* flush(r.t);
      return;
    }
    const skew = skewAt(r.t);
    const body = skew === 0 ? r.body : { ...r.body, ts: new Date(r.t + skew).toISOString() };
    const reading: ExpectedReading = { ts: body.ts as string, body };
    // Offline: hold readings and send them as one batch when the window ends.
    while (window < offline.length && r.t >= (offline[window] as { to: number }).to) {
      yield* flush((offline[window] as { to: number }).to);
      window++;
    }
    const w = offline[window];
    if (w && r.t >= w.from && r.t < w.to) {
      if (held.length === 0) yield { t: w.from, topic: '', payload: '', valid: [], disconnectBefore: true };
      held.push({ t: r.t, reading });
      continue;
    }
    if (skew !== 0) {
      // Whether the gateway refuses it depends on its clock when the message arrives: the runner decides.
      yield { t: r.t, topic, payload: JSON.stringify(body), valid: [reading], clockSkewMs: skew };
      continue;
    }
    if (scenario.invalid && invalidRng.chance(scenario.invalid.rate)) {
      const kind = invalidRng.pick(scenario.invalid.kinds);
      yield {
        t: r.t,
        topic,
        payload: corrupt(kind, body, invalidRng),
        valid: [],
        invalid: { kind, expectedReason: kind === 'json' ? 'json' : 'schema' },
      };
      continue;
    }
    yield { t: r.t, topic, payload: JSON.stringify(body), valid: [reading] };
  }
  for (; window < offline.length; window++)
    yield* flush(Math.min(end, (offline[window] as { to: number }).to));
}
