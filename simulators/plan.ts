// A fleet run before it runs: residents with the scenario's effects, one message stream per device,
// and the ground truth of what the scenario does. `livinglab simulate --dry-run` prints it all.
import type { SchemaSet } from '../src/schemas/types.js';
import type { Fleet, FleetDevice } from './fleet.js';
import { createResident, type Resident, type Room } from './resident.js';
import type { Scenario } from './scenario.js';
import { deviceStream, type SimMessage } from './stream.js';

export interface GroundTruthEvent {
  readonly type: string;
  readonly at: string;
  readonly until: string;
  readonly site?: string;
  readonly device?: string;
  readonly detail?: Record<string, unknown>;
}

export interface PlannedDevice {
  readonly device: FleetDevice;
  readonly stream: () => Generator<SimMessage, void, undefined>;
}

export interface FleetPlan {
  readonly fleet: Fleet;
  readonly scenario: Scenario;
  readonly devices: readonly PlannedDevice[];
  readonly events: readonly GroundTruthEvent[];
}

export function planFleet(fleet: Fleet, scenario: Scenario, schemas: SchemaSet): FleetPlan {
  const residents = new Map<string, Resident>();
  const residentOf = (d: FleetDevice) => {
    let r = residents.get(d.site);
    if (!r) {
      r = createResident(fleet.seed, d.resident, fleet.tzOffsetMs);
      residents.set(d.site, r);
    }
    return r;
  };
  const known = new Set(fleet.devices.map((d) => d.id));
  const sites = new Set(fleet.devices.map((d) => d.site));
  const events: GroundTruthEvent[] = [];
  for (const e of scenario.events) {
    if (e.device && !known.has(e.device))
      throw new Error(`scenario ${scenario.name}: no device ${e.device} in fleet ${fleet.name}`);
    if (e.site && !sites.has(e.site))
      throw new Error(`scenario ${scenario.name}: no site ${e.site} in fleet ${fleet.name}`);
    const start = fleet.start + e.atMs;
    const end = start + e.durationMs;
    if (e.site) {
      const device = fleet.devices.find((d) => d.site === e.site) as FleetDevice;
      const kind = e.type as 'fall' | 'wandering' | 'fever' | 'hypoxia';
      const value = kind === 'fever' ? (e.peak ?? 1.8) : kind === 'hypoxia' ? (e.spo2 ?? 86) : undefined;
      residentOf(device).addEffect({
        kind,
        start,
        end,
        ...(value !== undefined ? { value } : {}),
        ...(e.room ? { room: e.room as Room } : {}),
      });
    }
    events.push({
      type: e.type,
      at: new Date(start).toISOString(),
      // An offline device still away when the run ends sends its buffer then (stream.ts): no later return.
      until: new Date(
        e.type === 'offline' ? Math.min(end, fleet.start + fleet.durationMs) : end,
      ).toISOString(),
      ...(e.site ? { site: e.site } : {}),
      ...(e.device ? { device: e.device } : {}),
      ...(e.peak !== undefined || e.spo2 !== undefined || e.skewMs !== undefined || e.room
        ? {
            detail: {
              ...(e.peak !== undefined ? { peakC: e.peak } : {}),
              ...(e.spo2 !== undefined ? { spo2: e.spo2 } : {}),
              ...(e.skewMs !== undefined ? { skewMs: e.skewMs } : {}),
              ...(e.room ? { room: e.room } : {}),
            },
          }
        : {}),
    });
  }
  const devices = fleet.devices.map((device): PlannedDevice => {
    const schema = schemas.latest(device.type);
    if (!schema) throw new Error(`fleet ${fleet.name}: no schema for device type ${device.type}`);
    const resident = residentOf(device);
    return {
      device,
      stream: () => deviceStream({ fleet, scenario, device, resident, channel: schema.channel }),
    };
  });
  return { fleet, scenario, devices, events };
}
