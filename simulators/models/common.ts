// What every device model gets, and the two shapes of device: periodic telemetry and sampled events.
import type { Rng } from '../random.js';
import type { Resident, ResidentState } from '../resident.js';

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export interface ModelContext {
  readonly deviceId: string;
  readonly rng: Rng;
  readonly resident: Resident;
  readonly start: number;
  readonly end: number;
  readonly intervalMs: number;
  /** Room or door the device is installed at (motion, door, climate sensors). */
  readonly place?: string;
  /** Battery level at t (integer %), or undefined for mains-powered devices. */
  battery(t: number): number | undefined;
  /** Local hour of day (0–24, fractional) at t. */
  hourOf(t: number): number;
}

export interface ModelReading {
  readonly t: number;
  readonly body: Record<string, unknown>;
}

export type Model = (ctx: ModelContext) => Generator<ModelReading, void, undefined>;

/** Readings every interval (with ±2 % jitter, as real clocks drift), from a random phase. */
export function* periodic(
  ctx: ModelContext,
  make: (t: number, state: ResidentState) => Record<string, unknown> | undefined,
): Generator<ModelReading, void, undefined> {
  let t = ctx.start + Math.floor(ctx.rng.next() * ctx.intervalMs);
  while (t < ctx.end) {
    const body = make(t, ctx.resident.state(t));
    if (body) yield { t, body };
    t += Math.round(ctx.intervalMs * (1 + ctx.rng.uniform(-0.02, 0.02)));
  }
}

/** Looks at the resident every `stepMs` and emits whatever events `step` finds. */
export function* sampled(
  ctx: ModelContext,
  stepMs: number,
  step: (t: number, now: ResidentState, before: ResidentState) => Record<string, unknown>[],
): Generator<ModelReading, void, undefined> {
  let before = ctx.resident.state(ctx.start);
  for (let t = ctx.start + stepMs; t < ctx.end; t += stepMs) {
    const now = ctx.resident.state(t);
    for (const body of step(t, now, before)) yield { t, body };
    before = now;
  }
}

/** A first-order autoregressive noise source: smooth, correlated, mean 0. */
export function ar1(rng: Rng, sd: number, keep = 0.8) {
  let x = 0;
  return () => {
    x = keep * x + Math.sqrt(1 - keep * keep) * rng.normal(0, sd);
    return x;
  };
}

/** Heart-rate change (beats/min) by activity, from resting. */
export const HR_DELTA: Record<ResidentState['activity'], number> = {
  sleep: -7,
  resting: 0,
  meal: 6,
  active: 18,
  bathroom: 10,
  out: 22,
  fallen: 28,
};

export const iso = (t: number) => new Date(t).toISOString();

export function withBattery(
  ctx: ModelContext,
  t: number,
  body: Record<string, unknown>,
): Record<string, unknown> {
  const b = ctx.battery(t);
  return b === undefined ? body : { ...body, battery: b };
}
