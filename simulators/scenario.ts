// Scenarios (simulators/scenarios/*.yaml): scripted events on top of a fleet, each with ground truth:
// a fall, a night of wandering, fever, hypoxia, a device offline, a battery draining to empty,
// clock skew, and a rate of deliberately invalid payloads of chosen kinds.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { durationPattern, parseDuration } from '../src/config/duration.js';
import { parseYaml, validateYaml } from '../src/config/yaml-file.js';
import { GatewayError } from '../src/errors.js';

const dur = { type: 'string', pattern: durationPattern({ fraction: true }) };
const SCENARIO_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string' },
    description: { type: 'string' },
    events: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'at'],
        properties: {
          type: { enum: ['fall', 'wandering', 'fever', 'hypoxia', 'offline', 'battery-drain', 'clock-skew'] },
          at: dur,
          duration: dur,
          site: { type: 'string' },
          device: { type: 'string' },
          room: { type: 'string' },
          peak: { type: 'number', minimum: 0.3, maximum: 4 },
          spo2: { type: 'integer', minimum: 70, maximum: 94 },
          skew: { type: 'string', pattern: durationPattern({ signed: true }) },
        },
      },
    },
    invalid: {
      type: 'object',
      additionalProperties: false,
      required: ['rate'],
      properties: {
        rate: { type: 'number', minimum: 0, maximum: 1 },
        kinds: {
          type: 'array',
          minItems: 1,
          items: { enum: ['json', 'range', 'missing', 'type'] },
          default: ['json', 'range', 'missing', 'type'],
        },
      },
    },
  },
} as const;

const validateScenario = new Ajv({ allErrors: true, useDefaults: true }).compile(SCENARIO_SCHEMA);

export type ScenarioEventType =
  | 'fall'
  | 'wandering'
  | 'fever'
  | 'hypoxia'
  | 'offline'
  | 'battery-drain'
  | 'clock-skew';
export type InvalidKind = 'json' | 'range' | 'missing' | 'type';

export interface ScenarioEvent {
  readonly type: ScenarioEventType;
  /** Offset from the fleet start. */
  readonly atMs: number;
  readonly durationMs: number;
  readonly site?: string;
  readonly device?: string;
  readonly room?: string;
  readonly peak?: number;
  readonly spo2?: number;
  readonly skewMs?: number;
}

export interface Scenario {
  readonly name: string;
  readonly events: readonly ScenarioEvent[];
  readonly invalid?: { readonly rate: number; readonly kinds: readonly InvalidKind[] };
}

export const EMPTY_SCENARIO: Scenario = { name: 'none', events: [] };

export function parseScenario(text: string, file: string): Scenario {
  const raw = validateYaml(parseYaml(text, file, 'LL_INPUT_INVALID'), validateScenario, 'LL_INPUT_INVALID');
  const s = raw as {
    name: string;
    events: {
      type: ScenarioEventType;
      at: string;
      duration?: string;
      site?: string;
      device?: string;
      room?: string;
      peak?: number;
      spo2?: number;
      skew?: string;
    }[];
    invalid?: { rate: number; kinds: InvalidKind[] };
  };
  const events = s.events.map((e, i): ScenarioEvent => {
    const needsDevice = e.type === 'offline' || e.type === 'battery-drain' || e.type === 'clock-skew';
    if (needsDevice && !e.device)
      throw new GatewayError('LL_INPUT_INVALID', `${file}: /events/${i} (${e.type}) needs "device"`);
    if (!needsDevice && !e.site)
      throw new GatewayError('LL_INPUT_INVALID', `${file}: /events/${i} (${e.type}) needs "site"`);
    const skew = e.skew?.startsWith('-')
      ? -(parseDuration(e.skew.slice(1)) as number)
      : e.skew
        ? parseDuration(e.skew)
        : undefined;
    return {
      type: e.type,
      atMs: parseDuration(e.at) as number,
      durationMs: e.duration ? (parseDuration(e.duration) as number) : 30 * 60_000,
      ...(e.site ? { site: e.site } : {}),
      ...(e.device ? { device: e.device } : {}),
      ...(e.room ? { room: e.room } : {}),
      ...(e.peak !== undefined ? { peak: e.peak } : {}),
      ...(e.spo2 !== undefined ? { spo2: e.spo2 } : {}),
      ...(skew !== undefined ? { skewMs: skew } : {}),
    };
  });
  return { name: s.name, events, ...(s.invalid ? { invalid: s.invalid } : {}) };
}

export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `cannot read scenario file ${file}: ${(err as Error).message}`,
    );
  }
  return parseScenario(text, file);
}
