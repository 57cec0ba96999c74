// Starts a real influxd (Debian's influxdb package, 1.6) on free loopback ports with a temporary
// data directory, for integration tests. One per test file; stopped and removed afterwards.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InfluxDB } from 'influx';
import { freePort } from './ports.js';

export interface Influxd {
  readonly url: string;
  readonly port: number;
  /** influxd's RPC bind-address (host:port), which `influxd backup/restore -portable -host` take. */
  readonly rpcAddress: string;
  /** The running influxd's process id (for CPU and memory figures in bench/). */
  pid(): number | undefined;
  readonly client: (db: string) => InfluxDB;
  query<T = Record<string, unknown>>(db: string, q: string): Promise<T[]>;
  /** Stops the process but keeps its data (an outage). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Whether the process is running (false after kill() until restart()). */
  running(): boolean;
  stop(): Promise<void>;
}

export function influxConfig(dir: string, httpPort: number, rpcPort: number): string {
  return `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
`;
}

async function waitForPing(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`influxd exited with ${child.exitCode}: ${output()}`);
    try {
      const res = await fetch(`${url}/ping`);
      if (res.status === 204) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`influxd (pid ${child.pid}) did not answer on ${url} within ${timeoutMs} ms: ${output()}`);
}

export async function startInfluxd(opts: { port?: number; startTimeoutMs?: number } = {}): Promise<Influxd> {
  const dir = await mkdtemp(join(tmpdir(), 'll-influxd-'));
  let port = opts.port ?? (await freePort());
  const configFile = join(dir, 'influxdb.conf');
  let rpcPort = await freePort();
  await writeFile(configFile, influxConfig(dir, port, rpcPort));
  let url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  const launch = async () => {
    const c = spawn('influxd', ['-config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    try {
      await waitForPing(url, c, () => stderr, opts.startTimeoutMs ?? 30_000);
    } catch (err) {
      // A start that fails or times out leaves nothing running.
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }
      throw err;
    }
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (c.exitCode === null) {
      c.kill('SIGKILL');
      await exited;
    }
  };
  // A free port can be taken by a parallel test between our probe and influxd's bind: try others.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt >= 5 || opts.port || !/address already in use/.test((err as Error).message)) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      port = await freePort();
      url = `http://127.0.0.1:${port}`;
      rpcPort = await freePort();
      await writeFile(configFile, influxConfig(dir, port, rpcPort));
    }
  }
  const client = (db: string) => new InfluxDB({ host: '127.0.0.1', port, database: db });
  return {
    url,
    port,
    rpcAddress: `127.0.0.1:${rpcPort}`,
    pid: () => child?.pid,
    client,
    async query<T>(db: string, q: string) {
      // Raw HTTP with epoch=ns: exact timestamps, and numbers exactly as InfluxDB returns them.
      const res = await fetch(
        `${url}/query?db=${encodeURIComponent(db)}&epoch=ns&q=${encodeURIComponent(q)}`,
      );
      const body = (await res.json()) as {
        results: {
          series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[];
          error?: string;
        }[];
      };
      const result = body.results[0];
      if (result?.error) throw new Error(result.error);
      const rows: T[] = [];
      for (const series of result?.series ?? []) {
        for (const values of series.values) {
          const row: Record<string, unknown> = { ...(series.tags ?? {}) };
          series.columns.forEach((c, i) => {
            row[c] = values[i];
          });
          rows.push(row as T);
        }
      }
      return rows;
    },
    kill,
    restart: launch,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
