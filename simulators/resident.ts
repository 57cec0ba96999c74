// A resident's day, the ground every home device stands on: sleep, waking, meals, bathroom visits
// at night, an outing some days. One plan per resident and day, drawn from its own seeded stream,
// so the state at any instant can be computed without simulating what came before.
//
// Assumptions and sources:
// - Older adults living alone sleep about 22:30–07:00 with 1–2 nocturia voids a night
//   (nocturia ≥1/night in over half of people over 70: Bosch & Weiss, J Urol 2010;184:440).
// - Meals around 08:00, 12:30 and 18:00; an outing on about half of the days (assumption of the lab).
// - Scenario effects (fall, wandering, fever, hypoxia) override the plan for their duration.
import { createRng, hashSeed } from './random.js';

export type Activity = 'sleep' | 'bathroom' | 'meal' | 'active' | 'resting' | 'out' | 'fallen';
export type Room = 'bedroom' | 'bathroom' | 'kitchen' | 'living-room' | 'hall' | 'out';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MIN = 60_000;

interface Span {
  start: number;
  end: number;
}

export interface DayPlan {
  /** Start of the local day, ms since the epoch. */
  day: number;
  wake: number;
  sleep: number;
  nightVisits: Span[];
  meals: Span[];
  outing?: Span;
}

export interface ResidentEffect {
  kind: 'fall' | 'wandering' | 'fever' | 'hypoxia';
  start: number;
  end: number;
  /** fever: peak °C above normal; hypoxia: target SpO2; fall: room. */
  value?: number;
  room?: Room;
}

export interface ResidentState {
  activity: Activity;
  room: Room;
  /** Extra body temperature (°C) from a fever. */
  feverC: number;
  /** SpO2 the body is pushed towards during hypoxia, if any. */
  hypoxiaSpo2?: number;
}

export interface Resident {
  readonly id: string;
  /** Resting heart rate, the person's own baseline. */
  readonly restingHr: number;
  readonly baseSpo2: number;
  readonly baseWeightKg: number;
  plan(t: number): DayPlan;
  state(t: number): ResidentState;
  addEffect(effect: ResidentEffect): void;
}

export function createResident(seed: number, id: string, tzOffsetMs: number): Resident {
  const base = createRng(hashSeed(seed, 'resident', id));
  const restingHr = Math.round(base.uniform(58, 76));
  const baseSpo2 = Math.round(base.uniform(95, 98));
  const baseWeightKg = Math.round(base.uniform(52, 95) * 10) / 10;
  const wakeMean = base.normal(7 * HOUR, 0.4 * HOUR);
  const sleepMean = base.normal(22.5 * HOUR, 0.5 * HOUR);
  const effects: ResidentEffect[] = [];
  const plans = new Map<number, DayPlan>();

  const plan = (t: number): DayPlan => {
    const dayIndex = Math.floor((t + tzOffsetMs) / DAY);
    const cached = plans.get(dayIndex);
    if (cached) return cached;
    const rng = createRng(hashSeed(seed, 'day', id, dayIndex));
    const day = dayIndex * DAY - tzOffsetMs;
    const wake = day + rng.normal(wakeMean, 0.25 * HOUR);
    const sleep = day + rng.normal(sleepMean, 0.3 * HOUR);
    const visits = rng.next() < 0.35 ? 0 : rng.next() < 0.6 ? 1 : 2;
    const nightVisits: Span[] = [];
    for (let i = 0; i < visits; i++) {
      const start = day + rng.uniform(1 * HOUR, 5.5 * HOUR) + i * 0.5 * HOUR;
      nightVisits.push({ start, end: start + rng.uniform(4, 10) * MIN });
    }
    const meals = [8, 12.5, 18].map((h) => {
      const start = day + rng.normal(h * HOUR, 0.25 * HOUR);
      return { start, end: start + rng.uniform(15, 35) * MIN };
    });
    const p: DayPlan = { day, wake, sleep, nightVisits, meals };
    if (rng.chance(0.5)) {
      const start = day + rng.uniform(9.5 * HOUR, 14 * HOUR);
      p.outing = { start, end: start + rng.uniform(40, 150) * MIN };
    }
    if (plans.size > 64) plans.clear();
    plans.set(dayIndex, p);
    return p;
  };

  const within = (s: Span | undefined, t: number) => s !== undefined && t >= s.start && t < s.end;

  const planned = (t: number): { activity: Activity; room: Room } => {
    const p = plan(t);
    // The previous evening's bedtime also counts: a day plan's sleep is at its end.
    const prevSleep = plan(t - DAY).sleep;
    const asleep = t < p.wake ? t >= prevSleep : t >= p.sleep;
    if (p.nightVisits.some((v) => within(v, t))) return { activity: 'bathroom', room: 'bathroom' };
    if (asleep) return { activity: 'sleep', room: 'bedroom' };
    if (within(p.outing, t)) return { activity: 'out', room: 'out' };
    if (p.meals.some((m) => within(m, t))) return { activity: 'meal', room: 'kitchen' };
    // Daytime: mostly resting in the living room, with some moving about (15-minute slots).
    const slot = Math.floor(t / (15 * MIN));
    const r = createRng(hashSeed(seed, 'slot', id, slot)).next();
    if (t - p.wake < 20 * MIN) return { activity: 'active', room: 'bathroom' };
    if (r < 0.12) return { activity: 'active', room: 'hall' };
    if (r < 0.2) return { activity: 'bathroom', room: 'bathroom' };
    if (r < 0.45) return { activity: 'active', room: 'kitchen' };
    return { activity: 'resting', room: 'living-room' };
  };

  return {
    id,
    restingHr,
    baseSpo2,
    baseWeightKg,
    plan,
    addEffect: (e) => effects.push(e),
    state(t) {
      let { activity, room } = planned(t);
      let feverC = 0;
      let hypoxiaSpo2: number | undefined;
      for (const e of effects) {
        if (t < e.start || t >= e.end) continue;
        const progress = (t - e.start) / Math.max(1, e.end - e.start);
        if (e.kind === 'fall') {
          activity = 'fallen';
          room = e.room ?? 'bathroom';
        } else if (e.kind === 'wandering') {
          const step = Math.floor((t - e.start) / (4 * MIN));
          activity = 'active';
          room = (['hall', 'kitchen', 'living-room', 'hall', 'bathroom'] as const)[step % 5] as Room;
        } else if (e.kind === 'fever') {
          // Rises over the first quarter, holds, falls over the last quarter.
          const shape = Math.min(1, progress * 4, (1 - progress) * 4);
          feverC = Math.max(feverC, (e.value ?? 1.8) * shape);
        } else if (e.kind === 'hypoxia') {
          hypoxiaSpo2 = e.value ?? 86;
        }
      }
      return { activity, room, feverC, ...(hypoxiaSpo2 !== undefined ? { hypoxiaSpo2 } : {}) };
    },
  };
}
