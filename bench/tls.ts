// Connection set-up over MQTT over TLS against plain TCP (issue 16): one gateway with both
// listeners; N devices log in (CONNECT with password, CONNACK, close) with C in flight at a time,
// and the bench reports connections per second and the gateway's CPU per connection for each.
//
//   npm run build && npx tsx bench/tls.ts [--connections 2000] [--concurrency 50] [--runs 3]
//
// A device's first login costs a PBKDF2 check (registry/passwords.ts; the bench registry uses the
// production 1,000 iterations of generated device passwords); later logins with the same password
// hit the verified-credential cache. So the first phase logs every device in once over TCP (PBKDF2
// + TCP), and the TCP and TLS phases after it, both with cached credentials, differ by the TLS
// handshake alone. The client runs in this process on the same machine: its own CPU is reported.
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { startInfluxd } from '../test/helpers/influxd.js';
import { influxQuery } from './lib/influx.js';
import { watchProcess } from './lib/proc.js';
import type { PublisherDevice } from './lib/publisher.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { startGatewayTlsSystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
  },
});
const connections = Number(args.connections);
const concurrency = Number(args.concurrency);

interface Phase {
  readonly connections: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Gateway CPU (user + system) per connection, in milliseconds. */
  readonly gatewayCpuMs: number;
  /** This (client) process's CPU per connection, in milliseconds. */
  readonly clientCpuMs: number;
}

const PHASES = ['tcp-first-login', 'tcp', 'tls'] as const;
type PhaseName = (typeof PHASES)[number];

/** One login, up to the CONNACK, then the connection is closed. */
function login(url: string, device: PublisherDevice, ca?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      clientId: device.id,
      username: device.id,
      ...(device.password ? { password: device.password } : {}),
      ...(ca ? { ca } : {}),
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    c.once('connect', () => {
      c.end(true, () => resolve());
    });
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

async function runPhase(url: string, devices: readonly PublisherDevice[], pid: number, ca?: string) {
  const w = watchProcess(pid);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < devices.length) {
      const d = devices[next++] as PublisherDevice;
      await login(url, d, ca).catch(() => failed++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, devices.length) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const gateway = w.stop();
  const client = process.cpuUsage(cpu0);
  const n = devices.length;
  return {
    connections: n,
    failed,
    seconds,
    perSecond: (n - failed) / seconds,
    gatewayCpuMs: ((gateway.cpuPercent / 100) * seconds * 1000) / n,
    clientCpuMs: (client.user + client.system) / 1000 / n,
  } satisfies Phase;
}

const runs: Record<PhaseName, Phase>[] = [];
const influx = await startInfluxd();
try {
  for (let run = 1; run <= Number(args.runs); run++) {
    const db = `bench_tls_${run}`;
    await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
    // A fresh gateway per run: its verified-credential cache starts empty.
    const sys = await startGatewayTlsSystem({ influxUrl: influx.url, db, devices: connections });
    try {
      const pid = sys.pids.gateway as number;
      const tcpUrl = sys.tcpUrl as string;
      const first = await runPhase(tcpUrl, sys.devices, pid);
      const tcp = await runPhase(tcpUrl, sys.devices, pid);
      const tls = await runPhase(sys.mqttUrl, sys.devices, pid, sys.ca);
      runs.push({ 'tcp-first-login': first, tcp, tls });
      say(
        `run ${run}: ${PHASES.map((p) => `${p} ${fmt(runs[runs.length - 1]?.[p].perSecond ?? Number.NaN)}/s`).join(', ')}`,
      );
    } finally {
      await sys.stop();
      await influxQuery(influx.url, undefined, `DROP DATABASE ${db}`).catch(() => undefined);
    }
  }
} finally {
  await influx.stop();
}

const col = (p: PhaseName, f: (x: Phase) => number, d = 0) =>
  fmtSummary(summarize(runs.map((r) => f(r[p]))), d);
const LABEL: Record<PhaseName, string> = {
  'tcp-first-login': 'plain TCP, first login (PBKDF2 check)',
  tcp: 'plain TCP, cached credentials',
  tls: 'MQTT over TLS, cached credentials',
};
const ratio = (f: (r: Record<PhaseName, Phase>) => number) => fmtSummary(summarize(runs.map(f)), 2);
const tlsCpu = summarize(runs.map((r) => r.tls.gatewayCpuMs - r.tcp.gatewayCpuMs)).median;
const pbkdf2Cpu = summarize(runs.map((r) => r['tcp-first-login'].gatewayCpuMs - r.tcp.gatewayCpuMs)).median;
console.log(
  [
    `## Connection set-up: ${fmt(connections)} logins (CONNECT with password → CONNACK → close), ${concurrency} in flight, ${runs.length} runs`,
    '',
    table(
      ['phase', 'connections/s', 'gateway CPU ms per connection', 'client CPU ms per connection', 'failed'],
      PHASES.map((p) => [
        LABEL[p],
        col(p, (x) => x.perSecond),
        col(p, (x) => x.gatewayCpuMs, 2),
        col(p, (x) => x.clientCpuMs, 2),
        runs.map((r) => r[p].failed).join(', '),
      ]),
    ),
    '',
    `TLS / plain TCP handshakes per second (cached credentials): ${ratio((r) => r.tls.perSecond / r.tcp.perSecond)}`,
    `gateway CPU per connection added by TLS: ${fmt(tlsCpu, 2)} ms; by a first login's PBKDF2 check: ${fmt(pbkdf2Cpu, 2)} ms` +
      ` (dominates: ${tlsCpu > pbkdf2Cpu ? 'the TLS handshake' : 'the PBKDF2 check'})`,
    '',
    `raw: ${writeResult('tls-handshakes', { args, runs })}`,
  ].join('\n'),
);
process.exit(0);
