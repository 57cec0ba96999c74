// Fleet files (simulators/fleets/*.yaml): sites, residents, their devices, timing and seed. Loaded,
// checked (errors name the file and the path), and expanded into one entry per device.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { DURATION_UNITS, durationPattern, parseDuration } from '../src/config/duration.js';
import { parseYaml, validateYaml } from '../src/config/yaml-file.js';
import { GatewayError } from '../src/errors.js';
import { isSegment, SEGMENT_PATTERN, SEGMENT_RULE, SUBJECT_PATTERN } from '../src/registry/ids.js';

const segment = { type: 'string', pattern: SEGMENT_PATTERN };
const durationText = { type: 'string', pattern: durationPattern({ fraction: true }) };
const deviceSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: segment,
    interval: { type: 'string', pattern: durationPattern({ fraction: true, positive: true }) },
    room: segment,
    door: segment,
  },
};

const FLEET_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'seed', 'start', 'duration'],
  properties: {
    name: segment,
    description: { type: 'string' },
    seed: { type: 'integer' },
    start: {
      type: 'string',
      pattern: `^(now(-\\d+(${DURATION_UNITS}))?|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d(:\\d\\d(\\.\\d+)?)?(Z|[+-]\\d\\d:\\d\\d))$`,
    },
    duration: durationText,
    speed: { type: 'number', exclusiveMinimum: 0, default: 1 },
    timezone: { type: 'string', pattern: '^[+-]\\d\\d:\\d\\d$', default: '+01:00' },
    schedule: { type: 'string', description: 'cron expression for `serve --fleet`' },
    vendor: { type: 'string', default: 'simulator' },
    sites: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'residents'],
        properties: {
          id: segment,
          residents: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'devices'],
              properties: {
                id: { type: 'string', pattern: SUBJECT_PATTERN },
                devices: { type: 'array', items: deviceSpec },
              },
            },
          },
        },
      },
    },
    generate: {
      type: 'object',
      additionalProperties: false,
      required: ['homes', 'devices'],
      properties: {
        homes: { type: 'integer', minimum: 1, maximum: 100000 },
        prefix: { ...segment, default: 'home' },
        devices: { type: 'array', items: deviceSpec },
      },
    },
  },
} as const;

const validateFleet = new Ajv({ allErrors: true, useDefaults: true }).compile(FLEET_SCHEMA);

export interface FleetDevice {
  /** Device id: also MQTT username, client id and topic segment. */
  readonly id: string;
  readonly type: string;
  readonly site: string;
  /** Participant code of the resident: the registry's subject. */
  readonly resident: string;
  readonly intervalMs: number;
  readonly interval: string;
  readonly place?: string;
}

export interface Fleet {
  readonly file: string;
  readonly name: string;
  readonly seed: number;
  /** Start of simulated time, ms since the epoch (relative starts are resolved against `now`). */
  readonly start: number;
  readonly durationMs: number;
  readonly speed: number;
  readonly tzOffsetMs: number;
  readonly schedule?: string;
  readonly vendor: string;
  readonly devices: readonly FleetDevice[];
}

// How often each type reports when the fleet does not say: the periodic ones by their interval,
// the scheduled ones by their daily routine (liveness judges silence by this).
const DEFAULT_INTERVAL: Record<string, string> = {
  'pulse-oximeter': '5m',
  'bed-sensor': '5m',
  'room-climate': '5m',
  'blood-pressure': '12h',
  thermometer: '12h',
  'weight-scale': '24h',
};

export interface FleetOverrides {
  /** Like the file's `start`: an RFC 3339 time, `now` or `now-2h`. */
  start?: string;
  seed?: number;
  speed?: number;
  durationMs?: number;
  now?: number;
}

type RawDevice = { type: string; interval?: string; room?: string; door?: string };

// Device ids are made by joining segments, so each part may obey the rule while the whole does not:
// refuse it here, naming the fleet, not later in the registry. A generated participant code
// (`p-{site}`) is never longer than its home's device ids, so it passes the subject rule whenever
// they pass this one.
function checkDeviceId(file: string, deviceId: string): void {
  if (!isSegment(deviceId))
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `${file}: device id ${deviceId} (site + type) must be ${SEGMENT_RULE}; shorten the site id or prefix`,
    );
}

export function parseFleet(text: string, file: string, overrides: FleetOverrides = {}): Fleet {
  const raw = validateYaml(parseYaml(text, file, 'LL_INPUT_INVALID'), validateFleet, 'LL_INPUT_INVALID');
  const f = raw as {
    name: string;
    seed: number;
    start: string;
    duration: string;
    speed: number;
    timezone: string;
    schedule?: string;
    vendor: string;
    sites: { id: string; residents: { id: string; devices: RawDevice[] }[] }[];
    generate?: { homes: number; prefix: string; devices: RawDevice[] };
  };
  const now = overrides.now ?? Date.now();
  const startText = overrides.start ?? f.start;
  const rel = /^now(?:-(.+))?$/.exec(startText);
  const start = rel ? now - (rel[1] ? (parseDuration(rel[1]) ?? Number.NaN) : 0) : Date.parse(startText);
  if (Number.isNaN(start))
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `${file}: start "${startText}" is not a time, "now" or "now-2h"`,
    );
  const sign = f.timezone.startsWith('-') ? -1 : 1;
  const [hh, mm] = f.timezone.slice(1).split(':').map(Number) as [number, number];
  const devices: FleetDevice[] = [];
  const ids = new Set<string>();
  const add = (site: string, resident: string, specs: RawDevice[]) => {
    const count = new Map<string, number>();
    for (const d of specs) {
      const n = (count.get(d.type) ?? 0) + 1;
      count.set(d.type, n);
      const id = `${site}-${d.type}${n > 1 ? `-${n}` : ''}`;
      checkDeviceId(file, id);
      if (ids.has(id))
        throw new GatewayError(
          'LL_INPUT_INVALID',
          `${file}: device id ${id} appears twice (two sites with one id?)`,
        );
      ids.add(id);
      const interval = d.interval ?? DEFAULT_INTERVAL[d.type] ?? '1h';
      devices.push({
        id,
        type: d.type,
        site,
        resident,
        interval,
        intervalMs: parseDuration(interval) as number,
        ...(d.room || d.door ? { place: (d.room ?? d.door) as string } : {}),
      });
    }
  };
  for (const site of f.sites) {
    if (site.residents.length !== 1) {
      throw new GatewayError(
        'LL_INPUT_INVALID',
        `${file}: site ${site.id}: one resident per home (got ${site.residents.length})`,
      );
    }
    for (const r of site.residents) add(site.id, r.id, r.devices);
  }
  if (f.generate) {
    const width = String(f.generate.homes).length;
    for (let i = 1; i <= f.generate.homes; i++) {
      const n = String(i).padStart(width, '0');
      add(`${f.generate.prefix}-${n}`, `p-${f.generate.prefix}-${n}`, f.generate.devices);
    }
  }
  return {
    file,
    name: f.name,
    seed: overrides.seed ?? f.seed,
    start,
    durationMs: overrides.durationMs ?? (parseDuration(f.duration) as number),
    speed: overrides.speed ?? f.speed,
    tzOffsetMs: sign * (hh * 3_600_000 + mm * 60_000),
    ...(f.schedule ? { schedule: f.schedule } : {}),
    vendor: f.vendor,
    devices,
  };
}

export function loadFleet(file: string, overrides: FleetOverrides = {}): Fleet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayError('LL_INPUT_INVALID', `cannot read fleet file ${file}: ${(err as Error).message}`);
  }
  return parseFleet(text, file, overrides);
}
