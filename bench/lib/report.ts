// Tables on stdout and raw JSON under bench/results/, with the machine each figure came from.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Summary } from './stats.js';

// BENCH_RESULTS_DIR: somewhere else for raw JSON (the test suite's smoke runs use a temporary one,
// so that bench/results holds only real runs).
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR ?? new URL('../results/', import.meta.url).pathname;

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly influxd: string;
  readonly mosquitto: string;
  readonly date: string;
}

function versionOf(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 5000,
    });
    return pattern.exec(out)?.[1] ?? out.trim().split('\n')[0] ?? 'unknown';
  } catch (err) {
    // mosquitto -h exits 3 but prints its version; execFileSync puts that on the error.
    const out = String((err as { stdout?: string }).stdout ?? '');
    return pattern.exec(out)?.[1] ?? 'not installed';
  }
}

export function machine(): Machine {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    influxd: versionOf('influxd', ['version'], /InfluxDB (v\S+)/),
    mosquitto: versionOf('mosquitto', ['-h'], /mosquitto version (\S+)/),
    date: new Date().toISOString(),
  };
}

export function writeResult(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `${name}-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify({ name, machine: machine(), ...(data as object) }, null, 2)}\n`);
  return file;
}

export const fmt = (v: number, digits = 0): string =>
  Number.isFinite(v)
    ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–';

export const fmtSummary = (s: Summary, digits = 0): string =>
  s.runs === 0 ? '–' : `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;

/** A Markdown table (pastes straight into BENCHMARKS.md). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** Progress to stderr, so stdout holds only the tables. */
export function say(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
