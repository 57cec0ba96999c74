// CPU time and memory of another process from /proc (Linux), sampled while a load runs.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** tsx's loader as a URL, so child processes find it whatever directory the bench is run from. */
export const TSX_LOADER = import.meta.resolve('tsx');

export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces, closed by ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface ProcessUsage {
  /** Share of one core over the window, in percent (200 = both cores of a 2-core machine). */
  readonly cpuPercent: number;
  readonly peakRssMiB: number;
}

/** Samples RSS every second; stop() returns CPU over the window and the peak RSS seen. */
export function watchProcess(pid: number): { stop(): ProcessUsage } {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    const r = rssMiB(pid);
    if (r > peak || Number.isNaN(peak)) peak = r;
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      const r = rssMiB(pid);
      if (r > peak) peak = r;
      const seconds = (performance.now() - t0) / 1000;
      return { cpuPercent: ((cpuSeconds(pid) - cpu0) / seconds) * 100, peakRssMiB: peak };
    },
  };
}
