// The systems a load is run against, each started fresh on free loopback ports: the gateway as its
// own process (built `livinglab serve`, production defaults), Debian's Mosquitto, and the peers
// (Node-RED, a plain MQTT.js subscriber) that read from Mosquitto and write to the same influxd.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addAccount, addDevice } from '../../src/registry/edit.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { type Device, EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';
import { createCa, issueServerCert } from '../../src/tls/certs.js';
import { freePort } from '../../test/helpers/ports.js';
import { startFrontMosquitto } from './front-mosquitto.js';
import { TSX_LOADER } from './proc.js';
import type { PublisherDevice } from './publisher.js';

export const ROOT = new URL('../../', import.meta.url).pathname;
const BENCH = new URL('../', import.meta.url).pathname;
const PASSWORD = 'bench-password';
export const MEASUREMENT = 'pulse_oximeter';
export const TOPIC_FILTER = 'lab/+/pulse-oximeter/+/telemetry';

export interface SystemUnderTest {
  readonly name: string;
  readonly mqttUrl: string;
  /** The CA certificate (PEM) devices trust when mqttUrl is mqtts:// (gateway-tls only). */
  readonly ca?: string;
  /** The same gateway's plain-TCP listener, beside mqttUrl over TLS (gateway-tls only). */
  readonly tcpUrl?: string;
  /** The research and status HTTP API (gateway only). */
  readonly httpUrl?: string;
  readonly devices: readonly PublisherDevice[];
  /** A device of its own for publish-to-queryable probes. */
  readonly probe: PublisherDevice;
  /** A broker in front of gateways (mosquitto-gw*): its queues are in no gateway's spool. */
  readonly front?: boolean;
  /** Processes whose CPU and memory are reported, by role. */
  readonly pids: Readonly<Record<string, number>>;
  /** Unwritten spool bytes and the age of its oldest reading (gateway only). */
  spool?(): Promise<{ bytes: number; seconds: number }>;
  /** The gateway's Prometheus text (gateway only). */
  metrics?(): Promise<string>;
  /** The last lines the process wrote (diagnostics). */
  output?(): string;
  stop(): Promise<void>;
}

export interface SystemContext {
  readonly influxUrl: string;
  readonly db: string;
  readonly devices: number;
  /** Node flags for the gateway process only, before BENCH_GATEWAY_NODE_OPTIONS. */
  readonly nodeArgs?: readonly string[];
  /** Also registers staff account BENCH_STAFF (password BENCH_STAFF_PASSWORD) at this PBKDF2 cost. */
  readonly staffIterations?: number;
  /** Further registry content (research projects, tokens) added before the gateway starts. */
  readonly registry?: (data: RegistryData) => RegistryData;
  /** An existing bench registry (lab.yaml of deviceIds(devices)) to start with instead of a new one. */
  readonly registryFile?: string;
}

export const BENCH_STAFF = 'staff-bench';
export const BENCH_STAFF_PASSWORD = 'a staff passphrase';

export type SystemName =
  | 'gateway'
  | 'gateway-tls'
  | 'node-red'
  | 'plain'
  | 'mosquitto'
  | 'aedes'
  | 'mosquitto-gw1'
  | 'mosquitto-gw2';

export const deviceIds = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `ox-${String(i).padStart(5, '0')}`);

const topicOf = (id: string) => `lab/bench/pulse-oximeter/${id}/telemetry`;

/** Waits for `check`; a start that times out kills what it started before it fails. */
async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  started: { child: ChildProcess; output: () => string },
  ms = 60_000,
) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopProcess(started.child, 'SIGKILL');
  throw new Error(`${what} did not come up within ${ms / 1000} s: ${started.output().slice(-2000)}`);
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

function spawnLogged(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  let out = '';
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => out };
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

export async function startMosquitto(): Promise<{
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'll-bench-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // Debian's defaults otherwise (max_inflight_messages 20, max_queued_messages 1000): what a lab gets.
  await writeFile(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n`,
  );
  const { child, output } = spawnLogged('mosquitto', ['-c', conf]);
  try {
    await waitUntil('mosquitto', () => portOpen(port), { child, output });
  } catch (err) {
    // A start that fails or times out leaves nothing running and no folder behind.
    await stopProcess(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? 0,
    async stop() {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A metric without labels from a Prometheus text exposition; NaN when absent. */
export function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * The load generators open thousands of connections from loopback within seconds (10,000 in ~5 s
 * in connections.ts), far over the per-address default (mqtt.connectRate 100/s, burst 1,000) that
 * protects a lab from one address's flood. The bench lifts it; everything else stays the default.
 */
const BENCH_GATEWAY_ENV = {
  LIVINGLAB_MQTT_CONNECT_RATE: '1000000',
  LIVINGLAB_MQTT_CONNECT_BURST: '1000000',
  // The TLS listener (gateway-tls only) defaults to all interfaces; a bench has no business there.
  LIVINGLAB_LISTENERS_MQTTS_HOST: '127.0.0.1',
};

export async function benchRegistry(
  n: number,
  staffIterations?: number,
  more: (data: RegistryData) => RegistryData = (d) => d,
  existing?: string,
  /** Device ids other than deviceIds(n), e.g. one range per broker of a sharded bench. */
  ids?: readonly string[],
) {
  const dir = await mkdtemp(join(tmpdir(), 'll-bench-gw-'));
  const device = (id: string): PublisherDevice => ({ id, password: PASSWORD, topic: topicOf(id) });
  if (existing) return { dir, registry: existing, device };
  // Generated device passwords get 1,000 PBKDF2 iterations in production too (registry/passwords.ts).
  const hash = hashSecretSync(PASSWORD, 1000);
  // One device through addDevice (its checks and defaults), the rest copies of it under their own
  // ids: adding 100,000 one by one copies the list each time (quadratic, minutes).
  const one = addDevice(EMPTY_REGISTRY, {
    id: 'probe-0',
    type: 'pulse-oximeter',
    site: 'bench',
    schemaVersion: 1,
    vendor: 'bench',
    // Load generators, not residents: their points are tagged so (issue 18).
    provenance: 'simulated',
    passwordHash: hash,
  });
  const proto = one.devices[0] as Device;
  let data: RegistryData = {
    ...one,
    devices: [...(ids ?? deviceIds(n)), 'probe-0'].map((id) => ({ ...proto, id })),
  };
  if (staffIterations)
    data = addAccount(data, {
      id: BENCH_STAFF,
      role: 'staff',
      passwordHash: hashSecretSync(BENCH_STAFF_PASSWORD, staffIterations),
    });
  const registry = join(dir, 'lab.yaml');
  await writeRegistryFile(registry, more(data));
  return { dir, registry, device };
}

/** The embedded broker alone (authentication and ACL included, ingestion skipped). */
export async function startBrokerOnlySystem(ctx: SystemContext): Promise<SystemUnderTest> {
  const { dir, registry, device } = await benchRegistry(ctx.devices);
  const port = await freePort();
  const { child, output } = spawnLogged(process.execPath, [
    '--import',
    TSX_LOADER,
    join(BENCH, 'lib/broker-only.ts'),
    registry,
    String(port),
  ]);
  await waitUntil('the broker', async () => /listening/.test(output()), { child, output });
  return {
    name: 'aedes',
    mqttUrl: `mqtt://127.0.0.1:${port}`,
    devices: deviceIds(ctx.devices).map(device),
    probe: device('probe-0'),
    pids: { broker: child.pid ?? 0 },
    async stop() {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `serve`'s flags for a bench gateway: loopback listeners, quiet logs, its own data folder. */
function serveArgs(o: {
  registry: string;
  dataDir: string;
  ctx: SystemContext;
  mqttPort: number;
  httpPort: number;
  opsPort: number;
}): string[] {
  return [
    ...['--registry', o.registry, '--data-dir', o.dataDir],
    ...['--influx-url', o.ctx.influxUrl, '--influx-db', o.ctx.db],
    ...['--mqtt-host', '127.0.0.1', '--mqtt-port', String(o.mqttPort)],
    ...['--http-host', '127.0.0.1', '--http-port', String(o.httpPort), '--ops-port', String(o.opsPort)],
    ...['--log-level', 'warn'],
  ];
}

export async function startGatewaySystem(
  ctx: SystemContext,
  extraArgs: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<SystemUnderTest> {
  // BENCH_GATEWAY_ROOT: another checkout's build (e.g. a git worktree of main) as the baseline of a
  // side-by-side run.
  const root = process.env.BENCH_GATEWAY_ROOT ?? ROOT;
  const main = join(root, 'dist/src/cli/main.js');
  if (!existsSync(main)) throw new Error('dist/ is missing: run `npm run build` first (npm run bench does)');
  const { dir, registry, device } = await benchRegistry(
    ctx.devices,
    ctx.staffIterations,
    ctx.registry,
    ctx.registryFile,
  );
  const ids = deviceIds(ctx.devices);
  const mqttPort = await freePort();
  const httpPort = await freePort();
  const opsPort = await freePort();
  // BENCH_GATEWAY_NODE_OPTIONS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the gateway.
  const nodeArgs = [
    ...(ctx.nodeArgs ?? []),
    ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ?? '').split(' ').filter(Boolean),
  ];
  const { child, output } = spawnLogged(
    process.execPath,
    [
      ...nodeArgs,
      join(root, 'bin/livinglab.js'),
      'serve',
      ...serveArgs({ registry, dataDir: join(dir, 'data'), ctx, mqttPort, httpPort, opsPort }),
      ...extraArgs,
      // BENCH_GATEWAY_ARGS, e.g. "--no-spool", for side-by-side runs of gateway settings.
      ...(process.env.BENCH_GATEWAY_ARGS ?? '').split(' ').filter(Boolean),
    ],
    { env: { ...BENCH_GATEWAY_ENV, ...extraEnv } },
  );
  // Readiness and metrics are on the ops listener (loopback, no token).
  const base = `http://127.0.0.1:${opsPort}`;
  await waitUntil('the gateway', async () => (await fetch(`${base}/readyz`)).status === 200, {
    child,
    output,
  });
  return {
    name: 'gateway',
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    devices: ids.map(device),
    probe: device('probe-0'),
    pids: { gateway: child.pid ?? 0 },
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    spool: async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return {
        bytes: metricValue(text, 'livinglab_spool_bytes'),
        seconds: metricValue(text, 'livinglab_spool_oldest_unwritten_seconds'),
      };
    },
    output,
    async stop() {
      const crashed = child.exitCode !== null || child.signalCode !== null;
      await stopProcess(child);
      if (crashed || (child.exitCode !== 0 && child.exitCode !== null))
        process.stderr.write(`gateway exited early or with an error:\n${output().slice(-3000)}\n`);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The same gateway process as `gateway`, with a lab CA and a server certificate for 127.0.0.1 made
 * by src/tls/certs.ts: its devices connect over MQTT over TLS and trust that CA; the plain-TCP
 * listener stays on beside it (tcpUrl), so that one process can be measured over both.
 */
export async function startGatewayTlsSystem(ctx: SystemContext): Promise<SystemUnderTest> {
  const dir = await mkdtemp(join(tmpdir(), 'll-bench-tls-'));
  const ca = await createCa({ name: 'Bench Lab CA' });
  const server = await issueServerCert(ca, ['127.0.0.1']);
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  await writeFile(cert, server.cert, { mode: 0o600 });
  await writeFile(key, server.key, { mode: 0o600 });
  const port = await freePort();
  let sys: SystemUnderTest;
  try {
    sys = await startGatewaySystem(ctx, ['--tls-cert', cert, '--tls-key', key, '--mqtts-port', String(port)]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    ...sys,
    name: 'gateway-tls',
    mqttUrl: `mqtts://127.0.0.1:${port}`,
    ca: ca.cert,
    tcpUrl: sys.mqttUrl,
    async stop() {
      await sys.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function anonymousDevices(n: number) {
  const device = (id: string): PublisherDevice => ({ id, topic: topicOf(id) });
  return { devices: deviceIds(n).map(device), probe: device('probe-0') };
}

/** The same load against Debian's Mosquitto alone (nothing stored): the broker ceiling. */
export async function startMosquittoSystem(ctx: SystemContext): Promise<SystemUnderTest> {
  const mosq = await startMosquitto();
  return {
    name: 'mosquitto',
    mqttUrl: mosq.url,
    ...anonymousDevices(ctx.devices),
    pids: { mosquitto: mosq.pid },
    stop: () => mosq.stop(),
  };
}

// Node-RED's flow (opaque ids: Node-RED reads a property equal to a node id as a reference):
// mqtt in (QoS 1) → json → function (reading(s) → [fields, tags]) → influxdb out.
export function nodeRedFlow(mqttPort: number, influxUrl: string, db: string): unknown[] {
  const influx = new URL(influxUrl);
  const toPoints = `
const parts = msg.topic.split('/');
const tags = { site: parts[1], device_type: parts[2], device_id: parts[3] };
const point = (r) => [{ spo2: r.spo2, pulse: r.pulse, time: new Date(r.ts) }, tags];
msg.payload = Array.isArray(msg.payload.readings) ? msg.payload.readings.map(point) : point(msg.payload);
return msg;`;
  return [
    { id: 'b0000001', type: 'tab', label: 'bench' },
    {
      id: 'b0000002',
      type: 'mqtt-broker',
      broker: '127.0.0.1',
      port: String(mqttPort),
      clientid: 'node-red-bench',
      protocolVersion: '4',
      keepalive: '60',
      cleansession: true,
      autoConnect: true,
    },
    {
      id: 'b0000003',
      type: 'influxdb',
      hostname: influx.hostname,
      port: influx.port,
      protocol: 'http',
      database: db,
      name: 'bench',
      usetls: false,
      influxdbVersion: '1.x',
    },
    {
      id: 'b0000004',
      type: 'mqtt in',
      z: 'b0000001',
      topic: TOPIC_FILTER,
      qos: '1',
      datatype: 'utf8',
      broker: 'b0000002',
      nl: false,
      rap: false,
      inputs: 0,
      wires: [['b0000005']],
    },
    {
      id: 'b0000005',
      type: 'json',
      z: 'b0000001',
      property: 'payload',
      action: 'obj',
      wires: [['b0000006']],
    },
    { id: 'b0000006', type: 'function', z: 'b0000001', func: toPoints, outputs: 1, wires: [['b0000007']] },
    {
      id: 'b0000007',
      type: 'influxdb out',
      z: 'b0000001',
      influxdb: 'b0000003',
      measurement: MEASUREMENT,
      precision: '',
      retentionPolicy: '',
      wires: [],
    },
  ];
}

export async function startNodeRedSystem(ctx: SystemContext): Promise<SystemUnderTest> {
  const red = join(BENCH, 'node_modules/node-red/red.js');
  if (!existsSync(red))
    throw new Error('Node-RED is missing: run `npm install --prefix bench` (npm run bench does)');
  const mosq = await startMosquitto();
  const dir = await mkdtemp(join(tmpdir(), 'll-bench-red-'));
  await writeFile(join(dir, 'flows.json'), JSON.stringify(nodeRedFlow(mosq.port, ctx.influxUrl, ctx.db)));
  await writeFile(
    join(dir, 'settings.js'),
    `module.exports = { flowFile: 'flows.json', credentialSecret: false, httpAdminRoot: false, httpNodeRoot: false,
  uiHost: '127.0.0.1', logging: { console: { level: 'info', metrics: false, audit: false } } };\n`,
  );
  // Node-RED resolves contrib nodes from its user directory's node_modules.
  await writeFile(join(dir, 'package.json'), '{"name":"bench-flows","private":true}\n');
  const { symlink } = await import('node:fs/promises');
  await symlink(join(BENCH, 'node_modules'), join(dir, 'node_modules'));
  const uiPort = await freePort();
  const { child, output } = spawnLogged(process.execPath, [
    red,
    '--userDir',
    dir,
    '--port',
    String(uiPort),
    '--settings',
    join(dir, 'settings.js'),
  ]);
  await waitUntil('Node-RED', async () => /Connected to broker/.test(output()), { child, output });
  return {
    name: 'node-red',
    mqttUrl: mosq.url,
    ...anonymousDevices(ctx.devices),
    pids: { 'node-red': child.pid ?? 0, mosquitto: mosq.pid },
    output,
    async stop() {
      await stopProcess(child);
      await mosq.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function startPlainSystem(ctx: SystemContext): Promise<SystemUnderTest> {
  const mosq = await startMosquitto();
  const { child, output } = spawnLogged(process.execPath, [
    '--import',
    TSX_LOADER,
    join(BENCH, 'peers/plain-subscriber.ts'),
    mosq.url,
    ctx.influxUrl,
    ctx.db,
  ]);
  await waitUntil('the plain subscriber', async () => /subscribed/.test(output()), { child, output });
  return {
    name: 'plain',
    mqttUrl: mosq.url,
    ...anonymousDevices(ctx.devices),
    pids: { subscriber: child.pid ?? 0, mosquitto: mosq.pid },
    output,
    async stop() {
      await stopProcess(child);
      await mosq.stop();
    },
  };
}

/**
 * Issue 19's topology: Debian's Mosquitto in front (devices log in with the registry's passwords,
 * through the password_file and acl_file `livinglab broker mosquitto` writes) and `gateways`
 * gateways in external mode behind it, one shared-subscription group, each its own data folder
 * and spool, all writing to the same database. Its pids: mosquitto, gateway 1, gateway 2, ...
 */
export async function startMosquittoGatewaysSystem(
  ctx: SystemContext,
  gateways: number,
): Promise<SystemUnderTest> {
  const { registry, device, dir } = await benchRegistry(ctx.devices);
  const started: SystemUnderTest[] = [];
  let front: Awaited<ReturnType<typeof startFrontMosquitto>> | undefined;
  const stopAll = async () => {
    for (const g of started) await g.stop();
    await front?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    front = await startFrontMosquitto({ registry });
    for (let i = 1; i <= gateways; i++)
      started.push(
        await startGatewaySystem(
          ctx,
          [
            '--source',
            'external',
            '--broker-url',
            front.gatewayUrl,
            '--broker-client-id',
            `livinglab-gw-${i}`,
          ],
          {
            LIVINGLAB_EXTERNAL_USERNAME: front.gatewayUser,
            LIVINGLAB_BROKER_PASSWORD: front.gatewayPassword,
          },
        ),
      );
  } catch (err) {
    await stopAll();
    throw err;
  }
  const mosquittoPid = front.pid;
  const spools = started.flatMap((g) => (g.spool ? [g.spool] : []));
  return {
    name: `mosquitto-gw${gateways}`,
    front: true,
    mqttUrl: front.url,
    devices: deviceIds(ctx.devices).map(device),
    probe: device('probe-0'),
    pids: Object.fromEntries([
      ['mosquitto', mosquittoPid],
      ...started.map((g, i) => [gateways === 1 ? 'gateway' : `gateway ${i + 1}`, g.pids.gateway ?? 0]),
    ]),
    // Unwritten bytes add up over the spools; the oldest reading is the oldest of any of them.
    spool: async () => {
      const all = await Promise.all(spools.map((s) => s()));
      return {
        bytes: all.reduce((sum, s) => sum + s.bytes, 0),
        seconds: Math.max(...all.map((s) => s.seconds)),
      };
    },
    ...(started[0]?.metrics ? { metrics: started[0].metrics } : {}),
    output: () => [front?.output() ?? '', ...started.map((g) => g.output?.() ?? '')].join('\n---\n'),
    stop: stopAll,
  };
}

export function startSystem(name: SystemName, ctx: SystemContext): Promise<SystemUnderTest> {
  switch (name) {
    case 'gateway':
      return startGatewaySystem(ctx);
    case 'gateway-tls':
      return startGatewayTlsSystem(ctx);
    case 'node-red':
      return startNodeRedSystem(ctx);
    case 'plain':
      return startPlainSystem(ctx);
    case 'mosquitto':
      return startMosquittoSystem(ctx);
    case 'aedes':
      return startBrokerOnlySystem(ctx);
    case 'mosquitto-gw1':
      return startMosquittoGatewaysSystem(ctx, 1);
    case 'mosquitto-gw2':
      return startMosquittoGatewaysSystem(ctx, 2);
  }
}
