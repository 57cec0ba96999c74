// Device liveness: a device silent for more than 3 of its expected reporting intervals is marked
// offline (retained `status`, a line in the event log, a metric, an optional webhook), and online
// again as soon as it reports; and a device whose battery runs low is reported once (event log,
// metric, webhook). Devices without an interval in the registry are not judged silent.
import { appendFile, mkdir } from 'node:fs/promises';
import { resolveDataPaths } from '../config/data-paths.js';
import { parseDuration } from '../config/duration.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Device } from '../registry/types.js';

export const SILENT_INTERVALS = 3;

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
  /** A message from the device arrived (called on the ingest path: cheap). */
  observe(deviceId: string): void;
  /** The device's latest battery level (from its readings). */
  observeBattery(deviceId: string, level: number): void;
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
  publishStatus: (device: Device, status: 'online' | 'offline') => Promise<void>;
  webhook?: string;
  now?: () => number;
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

export function createLiveness(deps: LivenessDeps): Liveness {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const seen = new Map<string, number>();
  const silent = new Set<string>();
  const transitions = { offline: 0, online: 0 };
  const batteryLow = new Set<string>();
  const eventsFile = resolveDataPaths(deps.dataDir).eventsLog;

  const emit = async (
    device: Device,
    event: LivenessEvent['event'],
    silentSeconds?: number,
    battery?: number,
  ) => {
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
    if (event !== 'battery-low')
      await deps.publishStatus(device, event === 'device-offline' ? 'offline' : 'online');
    if (deps.webhook) void postWebhook(deps.webhook, e, deps.log);
  };

  return {
    silent,
    transitions,
    batteryLow,
    observeBattery(deviceId, level) {
      if (level > BATTERY_OK) batteryLow.delete(deviceId);
      if (level > BATTERY_LOW || batteryLow.has(deviceId)) return;
      batteryLow.add(deviceId);
      const device = deps.registry.current().devices.get(deviceId);
      if (device)
        emit(device, 'battery-low', undefined, level).catch((err: Error) =>
          deps.log.error({ err }, 'liveness event failed'),
        );
    },
    lastSeen: (id) => seen.get(id),
    observe(deviceId) {
      seen.set(deviceId, now());
      if (!silent.has(deviceId)) return;
      silent.delete(deviceId);
      transitions.online++;
      const device = deps.registry.current().devices.get(deviceId);
      if (device)
        emit(device, 'device-online').catch((err: Error) => deps.log.error({ err }, 'liveness event failed'));
    },
    async check() {
      const t = now();
      for (const device of deps.registry.current().devices.values()) {
        if (!device.enabled || !device.interval || silent.has(device.id)) continue;
        const interval = parseDuration(device.interval);
        if (!interval) continue;
        const last = seen.get(device.id) ?? startedAt;
        if (t - last > SILENT_INTERVALS * interval) {
          silent.add(device.id);
          transitions.offline++;
          await emit(device, 'device-offline', Math.round((t - last) / 1000));
        }
      }
    },
  };
}
