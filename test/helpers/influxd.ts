// Starts a real influxd (Debian's influxdb package, 1.6) on free loopback ports with a temporary
// data directory, for integration tests. One per test file; stopped and removed afterwards. With
// `auth`, influxd requires a login (auth-enabled) and that admin is created before it is handed out.
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
  /** Runs a statement as the admin (POST /query): CREATE USER, GRANT, CREATE DATABASE. */
  exec(q: string): Promise<void>;
  /** Stops the process but keeps its data (an outage). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Whether the process is running (false after kill() until restart()). */
  running(): boolean;
  stop(): Promise<void>;
}

export function influxConfig(dir: string, httpPort: number, rpcPort: number, authEnabled = false): string {
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
  auth-enabled = ${authEnabled}
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

/** An admin user: with it, influxd requires authentication (auth-enabled = true). */
export interface InfluxdAuth {
  readonly username: string;
  readonly password: string;
}

/** The admin's request headers (none without authentication) and a runner of admin statements. */
function adminRequests(url: string, admin: InfluxdAuth | undefined) {
  const headers: Record<string, string> = admin
    ? { authorization: `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}` }
    : {};
  const exec = async (q: string) => {
    const res = await fetch(`${url}/query`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ q }).toString(),
    });
    const body = (await res.json()) as { error?: string; results?: { error?: string }[] };
    const error = body.error ?? body.results?.[0]?.error;
    if (error) throw new Error(`${q}: ${error}`);
  };
  return { headers, exec };
}

/** Raw HTTP with epoch=ns: exact timestamps, and numbers exactly as InfluxDB returns them. */
async function queryAs<T>(url: string, headers: Record<string, string>, db: string, q: string): Promise<T[]> {
  const res = await fetch(`${url}/query?db=${encodeURIComponent(db)}&epoch=ns&q=${encodeURIComponent(q)}`, {
    headers,
  });
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
}

export async function startInfluxd(
  opts: { port?: number; startTimeoutMs?: number; auth?: InfluxdAuth } = {},
): Promise<Influxd> {
  const dir = await mkdtemp(join(tmpdir(), 'll-influxd-'));
  let port = opts.port ?? (await freePort());
  const configFile = join(dir, 'influxdb.conf');
  let rpcPort = await freePort();
  await writeFile(configFile, influxConfig(dir, port, rpcPort, opts.auth !== undefined));
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
      await writeFile(configFile, influxConfig(dir, port, rpcPort, opts.auth !== undefined));
    }
  }
  const { headers, exec } = adminRequests(url, opts.auth);
  // The first user of an influxd with authentication may be created without logging in, and must be an admin.
  if (opts.auth)
    await exec(
      `CREATE USER "${opts.auth.username}" WITH PASSWORD '${opts.auth.password}' WITH ALL PRIVILEGES`,
    );
  const admin = opts.auth;
  const client = (db: string) =>
    new InfluxDB({ host: '127.0.0.1', port, database: db, ...(admin ? { ...admin } : {}) });
  return {
    url,
    port,
    rpcAddress: `127.0.0.1:${rpcPort}`,
    pid: () => child?.pid,
    client,
    query: <T>(db: string, q: string) => queryAs<T>(url, headers, db, q),
    exec,
    kill,
    restart: launch,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
