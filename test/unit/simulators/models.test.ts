import { describe, expect, it } from 'vitest';
import { parseFleet } from '../../../simulators/fleet.js';
import { MODELS } from '../../../simulators/models/index.js';
import { planFleet } from '../../../simulators/plan.js';
import { createRng, hashSeed } from '../../../simulators/random.js';
import { createResident } from '../../../simulators/resident.js';
import { EMPTY_SCENARIO, parseScenario } from '../../../simulators/scenario.js';
import { bundledSchemasDir } from '../../../src/config/load.js';
import { loadSchemas } from '../../../src/schemas/load.js';

const schemas = loadSchemas(bundledSchemasDir());
const ALL_TYPES = Object.keys(MODELS);

const fleetText = (seed: number, duration = '7d') => `
name: week
seed: ${seed}
start: 2026-11-02T00:00:00Z
duration: ${duration}
sites:
  - id: h1
    residents:
      - id: p-1
        devices:
${ALL_TYPES.map((t) => `          - { type: ${t}, interval: 10m${t.includes('sensor') || t === 'room-climate' ? ', room: bedroom' : ''} }`).join('\n')}
`;

const messages = (seed: number, scenario = EMPTY_SCENARIO, duration = '7d') => {
  const plan = planFleet(parseFleet(fleetText(seed, duration), 'week.yaml'), scenario, schemas);
  return plan.devices.flatMap((pd) => [...pd.stream()].map((m) => ({ device: pd.device, ...m })));
};

describe('device models', () => {
  it('cover every device type with a schema', () => {
    expect(new Set(ALL_TYPES)).toEqual(new Set(schemas.all().map((s) => s.type)));
  });

  const week = messages(1);
  it.each(ALL_TYPES)('%s: a simulated week validates against its schema, in time order', (type) => {
    const schema = schemas.latest(type);
    const mine = week.filter((m) => m.device.type === type);
    expect(mine.length).toBeGreaterThan(3);
    for (const m of mine) {
      const body = JSON.parse(m.payload) as unknown;
      expect(schema?.validate(body), `${m.payload} ${JSON.stringify(schema?.validate.errors)}`).toBe(true);
    }
    const times = mine.map((m) => m.t);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('is deterministic: the same seed gives the same bytes, another seed other ones', () => {
    const a = messages(42, EMPTY_SCENARIO, '1d')
      .map((m) => m.payload)
      .join('\n');
    const b = messages(42, EMPTY_SCENARIO, '1d')
      .map((m) => m.payload)
      .join('\n');
    const c = messages(43, EMPTY_SCENARIO, '1d')
      .map((m) => m.payload)
      .join('\n');
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(a.length).toBeGreaterThan(1000);
  });

  it('keeps physiology plausible and correlated: lower heart rate asleep, bed occupied at night', () => {
    const ox = week
      .filter((m) => m.device.type === 'pulse-oximeter')
      .map((m) => JSON.parse(m.payload) as { ts: string; pulse: number; spo2: number });
    const hourOf = (ts: string) => (new Date(ts).getUTCHours() + 1) % 24;
    const night = ox.filter((r) => hourOf(r.ts) >= 1 && hourOf(r.ts) < 5).map((r) => r.pulse);
    const day = ox.filter((r) => hourOf(r.ts) >= 10 && hourOf(r.ts) < 18).map((r) => r.pulse);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(night)).toBeLessThan(mean(day) - 4);
    expect(Math.min(...ox.map((r) => r.spo2))).toBeGreaterThanOrEqual(90);
    const bed = week
      .filter((m) => m.device.type === 'bed-sensor')
      .map((m) => JSON.parse(m.payload) as { ts: string; occupied: boolean });
    const at3 = bed.filter((r) => hourOf(r.ts) === 3);
    const at15 = bed.filter((r) => hourOf(r.ts) === 15);
    expect(at3.filter((r) => r.occupied).length / at3.length).toBeGreaterThan(0.8);
    expect(at15.filter((r) => r.occupied).length).toBe(0);
  });

  it('lets weight drift slowly: within 2 kg over a week', () => {
    const w = week
      .filter((m) => m.device.type === 'weight-scale')
      .map((m) => (JSON.parse(m.payload) as { weight: number }).weight);
    expect(Math.max(...w) - Math.min(...w)).toBeLessThan(2);
  });

  it('drains batteries', () => {
    const levels = week
      .filter((m) => m.device.type === 'pulse-oximeter')
      .map((m) => (JSON.parse(m.payload) as { battery: number }).battery);
    expect(levels[levels.length - 1]).toBeLessThan(levels[0] as number);
  });

  it('residents are reproducible from the seed alone', () => {
    const a = createResident(5, 'p-1', 3_600_000);
    const b = createResident(5, 'p-1', 3_600_000);
    const t = Date.parse('2026-11-05T03:00:00Z');
    expect(a.plan(t)).toEqual(b.plan(t));
    expect(createRng(hashSeed(1, 'x')).next()).toBe(createRng(hashSeed(1, 'x')).next());
  });
});

describe('scenarios', () => {
  const scenario = parseScenario(
    `name: s
events:
  - { type: fall, at: 2h, site: h1, duration: 30m, room: bathroom }
  - { type: hypoxia, at: 14h, site: h1, duration: 1h, spo2: 86 }
  - { type: fever, at: 17h, site: h1, duration: 6h, peak: 2 }
  - { type: offline, at: 10h, device: h1-pulse-oximeter, duration: 2h }
  - { type: clock-skew, at: 16h, device: h1-bed-sensor, duration: 1h, skew: 10m }
  - { type: battery-drain, at: 1h, device: h1-fall-detector, duration: 8h }
  - { type: battery-drain, at: 1h, device: h1-room-climate, duration: 8h }
invalid: { rate: 0.2, kinds: [json, range, missing, type] }
`,
    's.yaml',
  );
  const run = messages(1, scenario, '1d');
  const of = (type: string) => run.filter((m) => m.device.type === type);
  const start = Date.parse('2026-11-02T00:00:00Z');

  it('a fall gives a fall-detector event and an emergency-button press within minutes', () => {
    const fall = of('fall-detector').find(
      (m) => m.payload.includes('"fall"') && m.payload.includes('bathroom'),
    );
    expect(fall?.t).toBeGreaterThanOrEqual(start + 2 * 3_600_000);
    expect(fall?.t).toBeLessThan(start + 2 * 3_600_000 + 3 * 60_000);
    const press = of('emergency-button').find(
      (m) => m.payload.includes('"pressed"') && m.t > start + 2 * 3_600_000,
    );
    expect(fall, 'a fall event').toBeDefined();
    expect(press, 'an emergency-button press after the fall').toBeDefined();
    expect((press?.t as number) - (fall?.t as number)).toBeLessThan(4 * 60_000);
  });

  it('hypoxia lowers SpO2 and fever raises body temperature', () => {
    const during = of('pulse-oximeter').filter(
      (m) => !m.invalid && m.t >= start + 14.2 * 3_600_000 && m.t < start + 15 * 3_600_000,
    );
    const spo2 = during.flatMap((m) => m.valid.map((r) => r.body.spo2 as number));
    expect(spo2.length, 'SpO2 readings inside the hypoxia window').toBeGreaterThanOrEqual(5);
    for (const v of spo2) expect(v).toBeLessThanOrEqual(89);
    const temps = of('thermometer')
      .filter((m) => !m.invalid && m.t > start + 19.5 * 3_600_000)
      .map((m) => (JSON.parse(m.payload) as { temperature: number }).temperature);
    expect(Math.max(...temps)).toBeGreaterThan(37.8);
  });

  it('an offline device disconnects, then sends what it buffered as one batch', () => {
    const ox = of('pulse-oximeter');
    const cut = ox.findIndex((m) => m.disconnectBefore);
    expect(ox[cut]?.t).toBe(start + 10 * 3_600_000);
    const batch = ox[cut + 1];
    expect(batch?.t).toBe(start + 12 * 3_600_000);
    const readings = (JSON.parse(batch?.payload ?? '{}') as { readings: unknown[] }).readings;
    expect(readings.length).toBe(batch?.valid.length);
    expect(readings.length).toBeGreaterThanOrEqual(10);
  });

  it('clock skew shifts the timestamps the device sends, and only within its window', () => {
    const skewed = of('bed-sensor').filter((m) => m.clockSkewMs !== undefined);
    expect(skewed.length).toBeGreaterThan(3);
    for (const m of skewed) expect(Date.parse(m.valid[0]?.ts ?? '') - m.t).toBe(10 * 60_000);
    expect(skewed.every((m) => m.t >= start + 16 * 3_600_000 && m.t < start + 17 * 3_600_000)).toBe(true);
  });

  it('a draining battery reaches 0 and the device goes silent', () => {
    // The room climate sensor reports every 10 minutes all day, so silence after the drain is its doing.
    const rc = of('room-climate').flatMap((m) => m.valid.map((r) => ({ t: m.t, battery: r.body.battery })));
    expect(rc.length).toBeGreaterThan(30);
    const last = rc[rc.length - 1] as { t: number; battery: number };
    expect(last.t).toBeLessThan(start + 9 * 3_600_000);
    expect(last.t).toBeGreaterThan(start + 9 * 3_600_000 - 30 * 60_000);
    expect(last.battery).toBeLessThanOrEqual(2);
    expect((rc[0] as { battery: number }).battery).toBeGreaterThan(50);
  });

  it('an offline window still open at the end of the run flushes its buffer at the end, as the ground truth says', () => {
    const late = parseScenario(
      'name: late\nevents:\n  - { type: offline, at: 23h, device: h1-pulse-oximeter, duration: 3h }\n',
      'late.yaml',
    );
    const plan = planFleet(parseFleet(fleetText(1, '1d'), 'week.yaml'), late, schemas);
    const end = start + 24 * 3_600_000;
    expect(plan.events[0]?.until).toBe(new Date(end).toISOString());
    const ox = [...(plan.devices.find((d) => d.device.type === 'pulse-oximeter')?.stream() ?? [])];
    const cut = ox.findIndex((m) => m.disconnectBefore);
    expect(ox[cut]?.t).toBe(start + 23 * 3_600_000);
    const held = ox.slice(cut + 1);
    expect(held.map((m) => m.t)).toEqual([end]);
    expect(held[0]?.valid.length).toBeGreaterThanOrEqual(5);
    expect(held[0]?.valid.every((r) => Date.parse(r.ts) >= start + 23 * 3_600_000)).toBe(true);
  });

  it('deliberately invalid payloads of each kind carry the reason the gateway must give', () => {
    const bad = run.filter((m) => m.invalid);
    const kinds = new Set(bad.map((m) => m.invalid?.kind));
    expect(kinds).toEqual(new Set(['json', 'range', 'missing', 'type']));
    for (const m of bad) {
      const schema = schemas.latest(m.device.type);
      let parsed: unknown;
      try {
        parsed = JSON.parse(m.payload);
      } catch {
        expect(m.invalid?.expectedReason).toBe('json');
        continue;
      }
      expect(m.invalid?.expectedReason).toBe('schema');
      expect(schema?.validate(parsed)).toBe(false);
    }
  });

  it('refuses a scenario naming a site or device the fleet does not have', () => {
    const bad = parseScenario('name: x\nevents:\n  - { type: fall, at: 1h, site: nowhere }\n', 'x.yaml');
    expect(() => planFleet(parseFleet(fleetText(1, '1d'), 'week.yaml'), bad, schemas)).toThrow(
      /no site nowhere/,
    );
    expect(() => parseScenario('name: x\nevents:\n  - { type: offline, at: 1h }\n', 'x.yaml')).toThrow(
      /needs "device"/,
    );
  });
});
