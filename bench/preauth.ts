// Gateway memory under the pre-login attack of issue 13 #2: `--sockets` raw TCP connections each
// announce a CONNECT of `--announce` bytes and send `--send` bytes of it, and never finish. Reports
// the gateway's RSS before, and at its peak while the sockets are open, and how many the gateway
// closed. The bench raises the per-address connection rate (one source address), so what bounds
// the growth here is the CONNECT limit and the pre-authentication budget.
//
//   npm run build && npx tsx bench/preauth.ts [--sockets 1000] [--announce 250000] [--send 200000]
//   BENCH_GATEWAY_ROOT=/path/to/other/checkout npx tsx bench/preauth.ts   (a baseline build)
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { startInfluxd } from '../test/helpers/influxd.js';
import { fixedHeader } from '../test/helpers/raw-mqtt.js';
import { influxQuery } from './lib/influx.js';
import { rssMiB } from './lib/proc.js';
import { fmt, say, table, writeResult } from './lib/report.js';
import { startGatewaySystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    sockets: { type: 'string', default: '1000' },
    announce: { type: 'string', default: '250000' },
    send: { type: 'string', default: '200000' },
  },
});

const connectHeader = (remaining: number) => fixedHeader(1, remaining);

const influx = await startInfluxd();
const db = 'bench_preauth';
await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
const sys = await startGatewaySystem({ influxUrl: influx.url, db, devices: 1 });
const sockets: Socket[] = [];
try {
  const pid = sys.pids.gateway as number;
  const port = Number(new URL(sys.mqttUrl).port);
  await new Promise((r) => setTimeout(r, 2000));
  const before = rssMiB(pid);
  const attack = Buffer.concat([connectHeader(Number(args.announce)), Buffer.alloc(Number(args.send), 0x41)]);
  let closed = 0;
  let peak = before;
  const sample = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 100);
  const sent = [];
  for (let i = 0; i < Number(args.sockets); i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    s.on('close', () => closed++);
    sockets.push(s);
    await Promise.race([once(s, 'connect'), once(s, 'close')]);
    sent.push(new Promise<void>((resolve) => (s.destroyed ? resolve() : s.write(attack, () => resolve()))));
  }
  await Promise.race([Promise.all(sent), new Promise((r) => setTimeout(r, 20_000))]);
  // Let the gateway read what it will read.
  await new Promise((r) => setTimeout(r, 3000));
  peak = Math.max(peak, rssMiB(pid));
  clearInterval(sample);
  const metrics = (await sys.metrics?.()) ?? '';
  const refused = metrics.split('\n').filter((l) => l.startsWith('livinglab_connections_refused_total{'));
  say(
    `## Gateway memory: ${args.sockets} sockets announcing a ${args.announce}-byte CONNECT, sending ${args.send} bytes of it\n\n${table(
      ['RSS before MiB', 'peak RSS MiB', 'growth MiB', 'closed by the gateway'],
      [[fmt(before), fmt(peak), fmt(peak - before), `${closed} of ${args.sockets}`]],
    )}\n${refused.join('\n')}`,
  );
  say(`raw: ${writeResult('preauth', { args, before, peak, closed, refused })}`);
} finally {
  for (const s of sockets) s.destroy();
  await sys.stop();
  await influx.stop();
}
