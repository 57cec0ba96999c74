// `livinglab serve` from the built CLI (bin/livinglab.js → dist/, run `npm run build` first) as a
// child process, for tests of how the process itself starts, refuses and stops: its exit code and
// time, what it printed, and the CPU time it used (read from /proc, as a child's process.cpuUsage
// is not available), so a test can tell a clean failure from a busy loop.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

export interface ServeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From spawn to exit. */
  ms: number;
  /** From its first output (its code loaded: slow on a loaded machine, seconds on 2 shared cores) to exit. */
  msAfterLoad: number;
  /** User + system CPU time of the process, as last read from /proc before it exited. */
  cpuMs: number;
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** Resolves when the output matches (rejects if the process exits first or after the timeout). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  readonly exited: Promise<ServeExit>;
  /** SIGKILLs the process if it still runs. */
  kill(): Promise<void>;
}

function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

export function spawnServe(args: string[], opts: { env?: Record<string, string> } = {}): ServeProcess {
  const started = Date.now();
  const child = spawn(process.execPath, [join(ROOT, 'bin/livinglab.js'), 'serve', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const pid = child.pid ?? 0;
  let out = '';
  let loadedAt = 0;
  const take = (d: Buffer) => {
    loadedAt ||= Date.now();
    out += d.toString();
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  let ticks = 0;
  const sampler = setInterval(() => {
    ticks = cpuTicks(pid) ?? ticks;
  }, 50);
  const exited = new Promise<ServeExit>((resolve) => {
    child.once('exit', (code, signal) => {
      clearInterval(sampler);
      const now = Date.now();
      const cpuMs = (ticks * 1000) / TICKS_PER_SECOND;
      resolve({ code, signal, ms: now - started, msAfterLoad: now - (loadedAt || now), cpuMs });
    });
  });
  return {
    child,
    pid,
    output: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = pattern.exec(out);
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`serve exited (${child.exitCode ?? child.signalCode}) before ${pattern}: ${out}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
