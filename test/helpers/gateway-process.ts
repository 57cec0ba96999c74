// The gateway as its own process (`livinglab serve` from source), for tests that kill it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRegistryFile } from '../../src/registry/file.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { cliEntry } from './cli.js';
import { type TestDevice, withDevices } from './gateway.js';

const ROOT = new URL('../../', import.meta.url).pathname;

export interface GatewayProcess {
  readonly dir: string;
  readonly dataDir: string;
  mqttUrl(): string;
  readonly httpPort: number;
  /** The ops listener (/readyz, /metrics), on loopback. */
  readonly opsPort: number;
  output(): string;
  start(extraArgs?: string[]): Promise<void>;
  /** Sends a signal and resolves the exit code. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
  /** Kills the process if it still runs and removes its folder (registry, spool, data). */
  stop(): Promise<void>;
}

export async function createGatewayProcess(opts: {
  influxUrl: string;
  db: string;
  devices: TestDevice[];
  args?: string[];
  /** Environment variables beside this process's own (LIVINGLAB_BROKER_PASSWORD, say). */
  env?: Record<string, string>;
  /** How long `start()` waits for the gateway to say it listens before killing it (default 20 s). */
  startTimeoutMs?: number;
}): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'll-gwp-'));
  const registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, withDevices(EMPTY_REGISTRY, opts.devices));
  const dataDir = join(dir, 'data');
  let child: ChildProcess | undefined;
  let mqttPort = 0;
  let httpPort = 0;
  let opsPort = 0;
  let out = '';
  return {
    dir,
    dataDir,
    mqttUrl: () => `mqtt://127.0.0.1:${mqttPort}`,
    get httpPort() {
      return httpPort;
    },
    get opsPort() {
      return opsPort;
    },
    output: () => out,
    async start(extraArgs = []) {
      const args = [
        ...cliEntry(),
        'serve',
        '--registry',
        registry,
        '--data-dir',
        dataDir,
        '--influx-url',
        opts.influxUrl,
        '--influx-db',
        opts.db,
        '--mqtt-host',
        '127.0.0.1',
        '--mqtt-port',
        '0',
        '--http-host',
        '127.0.0.1',
        '--http-port',
        '0',
        '--ops-port',
        '0',
        '--flush-interval',
        '100ms',
        ...(opts.args ?? []),
        ...extraArgs,
      ];
      const from = out.length;
      const env = { ...process.env, ...opts.env };
      const c = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          // A start that times out leaves nothing running.
          c.kill('SIGKILL');
          reject(new Error(`gateway (pid ${c.pid}) did not start: ${out}`));
        }, opts.startTimeoutMs ?? 20_000);
        c.stderr?.on('data', (d: Buffer) => {
          out += d.toString();
          const m =
            /MQTT (?:on port (\d+)|from \S+), HTTP on https?:\/\/localhost:(\d+)\S*, ops \(\/readyz, \/metrics\) on \S*:(\d+),/.exec(
              out.slice(from),
            );
          if (m) {
            mqttPort = Number(m[1] ?? 0);
            httpPort = Number(m[2]);
            opsPort = Number(m[3]);
            clearTimeout(timer);
            resolve();
          }
        });
        c.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${out}`)));
      });
    },
    async kill(signal) {
      const c = child;
      if (!c || c.exitCode !== null) return c?.exitCode ?? null;
      const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
      c.kill(signal);
      return exited;
    },
    async stop() {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
