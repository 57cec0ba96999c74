// Connection set-up over MQTT over TLS against plain TCP (issue 16): one gateway with both
// listeners; N devices log in (CONNECT with password, CONNACK, close) with C in flight at a time,
// and the bench reports connections per second and the gateway's CPU per connection for each.
//
//   npm run build && npx tsx bench/tls.ts [--connections 2000] [--concurrency 50] [--clients 2] [--runs 3]
//
// A device's first login costs a PBKDF2 check (registry/passwords.ts; the bench registry uses the
// production 1,000 iterations of generated device passwords); later logins with the same password
// hit the verified-credential cache. So the first phase logs every device in once over TCP (PBKDF2
// + TCP), and the TCP and TLS phases after it, both with cached credentials, differ by the TLS
// handshake alone. The clients (--clients processes, MQTT.js) share the machine with the gateway,
// and a TLS client handshake costs more CPU than the server's: on a small machine the clients can
// be what limits the rate, so the gateway's and the clients' CPU are reported beside it, and the
// gateway's CPU per login gives what one gateway core could take.

import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startInfluxd } from '../test/helpers/influxd.js';
import { influxQuery } from './lib/influx.js';
import { waitFor } from './lib/load.js';
import type { LoginJob, LoginResult } from './lib/login-client.js';
import { TSX_LOADER, watchProcess } from './lib/proc.js';
import type { PublisherDevice } from './lib/publisher.js';
import { fmt, fmtSummary, say, table, writeResult } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { startGatewayTlsSystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '50' },
    clients: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
  },
});
const connections = Number(args.connections);
const concurrency = Number(args.concurrency);
const clients = Number(args.clients);
const LOGIN_CLIENT = new URL('./lib/login-client.ts', import.meta.url).pathname;

interface Phase {
  readonly connections: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Gateway CPU (user + system) per connection, in milliseconds. */
  readonly gatewayCpuMs: number;
  /** Share of one core the gateway used over the phase (100 = one core busy). */
  readonly gatewayCpuPercent: number;
  /** The login client processes' CPU per connection, in milliseconds. */
  readonly clientCpuMs: number;
  /** The same, as a share of one core (all client processes together). */
  readonly clientCpuPercent: number;
}

const PHASES = ['tcp-first-login', 'tcp', 'tls'] as const;
type PhaseName = (typeof PHASES)[number];

/** Logs every device in once from `clients` processes (an equal share each), timed from 'go'. */
async function runPhase(url: string, devices: readonly PublisherDevice[], pid: number, ca?: string) {
  const n = Math.max(1, Math.min(clients, devices.length));
  const children = Array.from({ length: n }, (_, k) => {
    const child = fork(LOGIN_CLIENT, [], { execArgv: ['--import', TSX_LOADER], stdio: 'inherit' });
    const job: LoginJob = {
      url,
      ...(ca ? { ca } : {}),
      devices: devices.filter((_, i) => i % n === k),
      concurrency: Math.ceil(concurrency / n),
    };
    child.send(job);
    return child;
  });
  await Promise.all(children.map((c) => waitFor(c, 'ready')));
  const done = children.map((c) => waitFor<{ result: LoginResult }>(c, 'done'));
  const w = watchProcess(pid);
  const t0 = performance.now();
  for (const c of children) c.send({ type: 'go' });
  const results = (await Promise.all(done)).map((d) => d.result);
  const seconds = (performance.now() - t0) / 1000;
  const gateway = w.stop();
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const clientCpuSeconds = results.reduce((a, r) => a + r.cpuSeconds, 0);
  const total = devices.length;
  return {
    connections: total,
    failed,
    seconds,
    perSecond: (total - failed) / seconds,
    gatewayCpuMs: ((gateway.cpuPercent / 100) * seconds * 1000) / total,
    gatewayCpuPercent: gateway.cpuPercent,
    clientCpuMs: (clientCpuSeconds * 1000) / total,
    clientCpuPercent: (clientCpuSeconds / seconds) * 100,
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
    `## Connection set-up: ${fmt(connections)} logins (CONNECT with password → CONNACK → close), ${concurrency} in flight from ${clients} client processes, ${runs.length} runs`,
    '',
    table(
      [
        'phase',
        'connections/s',
        'gateway CPU ms per connection',
        'gateway CPU %',
        'one gateway core: connections/s',
        'client CPU ms per connection',
        'clients CPU %',
        'failed',
      ],
      PHASES.map((p) => [
        LABEL[p],
        col(p, (x) => x.perSecond),
        col(p, (x) => x.gatewayCpuMs, 2),
        col(p, (x) => x.gatewayCpuPercent),
        col(p, (x) => 1000 / x.gatewayCpuMs),
        col(p, (x) => x.clientCpuMs, 2),
        col(p, (x) => x.clientCpuPercent),
        runs.map((r) => r[p].failed).join(', '),
      ]),
    ),
    '',
    `TLS / plain TCP connections per second (cached credentials): measured ${ratio((r) => r.tls.perSecond / r.tcp.perSecond)}, ` +
      `per gateway CPU ${ratio((r) => r.tcp.gatewayCpuMs / r.tls.gatewayCpuMs)}`,
    `gateway CPU per connection added by TLS: ${fmt(tlsCpu, 2)} ms; by a first login's PBKDF2 check: ${fmt(pbkdf2Cpu, 2)} ms` +
      ` (dominates: ${tlsCpu > pbkdf2Cpu ? 'the TLS handshake' : 'the PBKDF2 check'})`,
    '',
    `raw: ${writeResult('tls-handshakes', { args, runs })}`,
  ].join('\n'),
);
process.exit(0);
