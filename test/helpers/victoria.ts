// Debian's victoria-metrics on a free loopback port: it serves InfluxDB's /api/v2/write, which is
// how the v2 writer is tested here (Debian has no InfluxDB 2 server).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface Victoria {
  readonly url: string;
  /** Every sample of metrics matching `match` (e.g. {__name__=~"pulse_oximeter_.*"}), after a flush. */
  exportSeries(
    match: string,
  ): Promise<{ metric: Record<string, string>; values: number[]; timestamps: number[] }[]>;
  stop(): Promise<void>;
}

async function waitForVictoria(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`victoria-metrics exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/ping`).then(
      (r) => r.status < 500,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error('victoria-metrics did not start within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}

export async function startVictoria(): Promise<Victoria> {
  const dir = await mkdtemp(join(tmpdir(), 'll-vm-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'victoria-metrics',
    [
      '-storageDataPath',
      dir,
      '-httpListenAddr',
      `127.0.0.1:${port}`,
      '-loggerLevel',
      'ERROR',
      '-search.latencyOffset',
      '0s',
    ],
    { stdio: 'ignore' },
  );
  try {
    await waitForVictoria(url, child);
  } catch (err) {
    // A start that fails or times out leaves nothing running and no folder behind.
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    async exportSeries(match) {
      // Make recent writes searchable before reading them back.
      await fetch(`${url}/internal/force_flush`);
      const text = await (await fetch(`${url}/api/v1/export?match[]=${encodeURIComponent(match)}`)).text();
      return text
        .split('\n')
        .filter(Boolean)
        .map(
          (l) => JSON.parse(l) as { metric: Record<string, string>; values: number[]; timestamps: number[] },
        );
    },
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
