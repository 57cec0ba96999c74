// Device liveness: a device silent for more than 3 of its expected reporting intervals is marked
// offline (retained `status`, a line in the event log, a metric, an optional webhook), and online
// again as soon as it reports; and a device whose battery runs low is reported once (event log,
// metric, webhook). Devices without an interval in the registry are not judged silent.
// One rule for the retained status and the metrics: a device is `online` while it is connected and
// not judged silent. A connection alone is not reporting: a silent device that connects stays
// `offline` (and counted silent) until a message of data arrives; its own `status` messages (a
// birth message, its last will) are not data. Liveness is the one publisher of the gateway's
// status messages, and its state survives a restart (liveness-state.ts): a silent device stays
// silent, a battery warning is not given twice, and every device's retained status is put back.
import { appendFile, mkdir } from 'node:fs/promises';
import { resolveDataPaths } from '../config/data-paths.js';
import { parseDuration } from '../config/duration.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import {
  createThrottledWriter,
  type DeviceLiveness,
  type DeviceStatus,
  readLivenessState,
  serialiseLivenessState,
  type WriterClock,
  writeStateFile,
} from './liveness-state.js';

export const SILENT_INTERVALS = 3;

/** The state file is written at most this often (and at stop): not once per reading. */
export const STATE_WRITE_INTERVAL_MS = 5_000;

export interface LivenessEvent {
  readonly at: string;
  readonly event: 'device-offline' | 'device-online' | 'battery-low';
  readonly deviceId: string;
  readonly site: string;
  readonly deviceType: string;
  readonly silentSeconds?: number;
  readonly battery?: number;
}

/** Battery at or below this is reported once, until it is back above BATTERY_OK (a new battery). */
export const BATTERY_LOW = 15;
const BATTERY_OK = 30;

/** What each event says in the gateway's log. */
const EVENT_MESSAGES: Record<LivenessEvent['event'], string> = {
  'device-offline': 'device silent: marked offline',
  'device-online': 'device reporting again: online',
  'battery-low': 'battery low',
};

export interface Liveness {
  /** Reads the state the last run left; before it nothing is written. Call before the broker starts. */
  start(): Promise<void>;
  /** Puts back every known device's retained status (aedes forgets them on restart): `offline`,
   * since no device is connected yet. Called by the broker before its listeners open. */
  restoreStatuses(): Promise<void>;
  /** Writes the state; after the message sources have stopped. Idempotent. */
  stop(): Promise<void>;
  /** A message from the device arrived (called on the ingest path: cheap). */
  observe(deviceId: string): void;
  /** The device's latest battery level (from its readings). */
  observeBattery(deviceId: string, level: number): void;
  /** A device's MQTT session began or ended (a takeover by its own new connection is neither). */
  session(device: Device, event: 'connected' | 'disconnected'): void;
  readonly batteryLow: ReadonlySet<string>;
  /** Marks devices silent for too long offline; run by the scheduler. */
  check(): Promise<void>;
  readonly silent: ReadonlySet<string>;
  lastSeen(deviceId: string): number | undefined;
  readonly transitions: { offline: number; online: number };
}

export interface LivenessDeps {
  registry: Registry;
  dataDir: string;
  log: Logger;
  publishStatus: (device: Device, status: DeviceStatus) => Promise<void>;
  webhook?: string;
  now?: () => number;
  /** The state file writer's timers (tests); its `now` is this clock's too. */
  writerClock?: WriterClock;
  stateWriteIntervalMs?: number;
  /**
   * False on a gateway that is not the lab's jobs leader (jobs.leader): it keeps its memory but
   * says nothing (no event, no status), or two gateways would each report the same battery or
   * device coming back, and each restore the retained statuses.
   */
  speaks?: boolean;
}

async function postWebhook(url: string, event: LivenessEvent, log: Logger): Promise<void> {
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(5000),
      });
      if (res.ok) return;
      if (res.status < 500 && res.status !== 429) break;
    } catch {
      // retried below
    }
    await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
  }
  log.warn({ event: event.event, deviceId: event.deviceId }, 'webhook not delivered after retries');
}

/**
 * What liveness holds in memory and its state file: `changed()` after each change schedules a
 * write; nothing is written before `load()` has read the saved state, so a start never overwrites
 * what it has not read.
 */
function createLivenessMemory(deps: LivenessDeps, now: () => number) {
  const seen = new Map<string, number>();
  const silent = new Set<string>();
  const batteryLow = new Set<string>();
  const statuses = new Map<string, DeviceStatus>();
  const file = resolveDataPaths(deps.dataDir).livenessState;
  const snapshot = () => {
    const out = new Map<string, DeviceLiveness>();
    for (const id of new Set([...seen.keys(), ...silent, ...batteryLow, ...statuses.keys()])) {
      const lastSeen = seen.get(id);
      const status = statuses.get(id);
      out.set(id, {
        ...(lastSeen !== undefined ? { lastSeen } : {}),
        silent: silent.has(id),
        batteryLow: batteryLow.has(id),
        ...(status ? { status } : {}),
      });
    }
    return out;
  };
  const writer = createThrottledWriter({
    snapshot: () => serialiseLivenessState(snapshot(), now()),
    write: writeStateFile(file),
    intervalMs: deps.stateWriteIntervalMs ?? STATE_WRITE_INTERVAL_MS,
    log: deps.log,
    ...(deps.writerClock ? { clock: deps.writerClock } : {}),
  });
  let loaded = false;
  return {
    seen,
    silent,
    batteryLow,
    statuses,
    changed() {
      if (loaded) writer.changed();
    },
    /**
     * When `id` was last seen, at most `t`. A time ahead of the clock (saved while the clock was
     * ahead, or the clock was set back) would keep the device from being judged silent before that
     * time comes: it counts as seen at `t`.
     */
    seenUpTo(id: string, t: number): number | undefined {
      const last = seen.get(id);
      if (last === undefined || last <= t) return last;
      seen.set(id, t);
      if (loaded) writer.changed();
      return t;
    },
    /** Takes back the devices of the saved state that are still registered. */
    async load(registered: (id: string) => boolean): Promise<number> {
      const saved = await readLivenessState(file, deps.log);
      for (const [id, d] of saved) {
        if (!registered(id)) continue;
        if (d.lastSeen !== undefined) seen.set(id, d.lastSeen);
        if (d.silent) silent.add(id);
        if (d.batteryLow) batteryLow.add(id);
        if (d.status) statuses.set(id, d.status);
      }
      loaded = true;
      return saved.size;
    },
    async save() {
      if (loaded) await writer.stop();
    },
  };
}

type Emit = (
  device: Device,
  event: LivenessEvent['event'],
  silentSeconds?: number,
  battery?: number,
) => Promise<void>;

/** One event: the gateway's log, the events log, the retained status and the webhook. */
function createEmitter(
  deps: LivenessDeps,
  now: () => number,
  publish: (device: Device, status: DeviceStatus) => Promise<void>,
): Emit {
  const eventsFile = resolveDataPaths(deps.dataDir).eventsLog;
  return async (device, event, silentSeconds, battery) => {
    if (deps.speaks === false) return;
    const e: LivenessEvent = {
      at: new Date(now()).toISOString(),
      event,
      deviceId: device.id,
      site: device.site,
      deviceType: device.type,
      ...(silentSeconds !== undefined ? { silentSeconds } : {}),
      ...(battery !== undefined ? { battery } : {}),
    };
    deps.log.info({ deviceId: device.id, event }, EVENT_MESSAGES[event]);
    await mkdir(deps.dataDir, { recursive: true });
    await appendFile(eventsFile, `${JSON.stringify(e)}\n`, { mode: 0o600 });
    if (event !== 'battery-low') await publish(device, event === 'device-offline' ? 'offline' : 'online');
    if (deps.webhook) void postWebhook(deps.webhook, e, deps.log);
  };
}

export function createLiveness(deps: LivenessDeps): Liveness {
  const now = deps.now ?? Date.now;
  // Reset by start(): a device's grace before it can be judged silent begins when the gateway
  // starts, so the time the gateway was down never counts against a device.
  let startedAt = now();
  const transitions = { offline: 0, online: 0 };
  const memory = createLivenessMemory(deps, now);
  const { seen, silent, batteryLow, statuses, changed } = memory;
  const deviceOf = (id: string) => deps.registry.current().devices.get(id);
  const logFailure = (err: Error) => deps.log.error({ err }, 'liveness event failed');
  const publish = async (device: Device, status: DeviceStatus) => {
    statuses.set(device.id, status);
    changed();
    await deps.publishStatus(device, status);
  };
  const emit = createEmitter(deps, now, publish);

  return {
    silent,
    transitions,
    batteryLow,
    async start() {
      const saved = await memory.load((id) => deviceOf(id) !== undefined);
      startedAt = now();
      if (saved > 0) deps.log.info({ devices: saved, silent: silent.size }, 'liveness state restored');
    },
    async restoreStatuses() {
      if (deps.speaks === false) return;
      for (const id of statuses.keys()) {
        const device = deviceOf(id);
        if (device) await publish(device, 'offline');
      }
    },
    stop: () => memory.save(),
    session(device, event) {
      // Connected but judged silent: stays offline until it reports (see the header).
      if (event === 'connected' && silent.has(device.id)) return;
      publish(device, event === 'connected' ? 'online' : 'offline').catch((err: Error) =>
        deps.log.warn({ deviceId: device.id, err }, 'could not publish status'),
      );
    },
    observeBattery(deviceId, level) {
      if (level > BATTERY_OK && batteryLow.delete(deviceId)) changed();
      if (level > BATTERY_LOW || batteryLow.has(deviceId)) return;
      batteryLow.add(deviceId);
      changed();
      const device = deviceOf(deviceId);
      if (device) emit(device, 'battery-low', undefined, level).catch(logFailure);
    },
    lastSeen: (id) => seen.get(id),
    observe(deviceId) {
      seen.set(deviceId, now());
      changed();
      if (!silent.has(deviceId)) return;
      silent.delete(deviceId);
      transitions.online++;
      const device = deviceOf(deviceId);
      if (device) emit(device, 'device-online').catch(logFailure);
    },
    async check() {
      const t = now();
      for (const device of deps.registry.current().devices.values()) {
        if (!device.enabled || !device.interval || silent.has(device.id)) continue;
        const interval = parseDuration(device.interval);
        if (!interval) continue;
        const last = memory.seenUpTo(device.id, t) ?? startedAt;
        if (t - Math.max(last, startedAt) > SILENT_INTERVALS * interval) {
          silent.add(device.id);
          changed();
          transitions.offline++;
          await emit(device, 'device-offline', Math.round((t - last) / 1000));
        }
      }
    },
  };
}
