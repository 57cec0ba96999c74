// PUBACK latency of a device while wrong passwords flood the gateway (issue 13 #10): a probe device
// publishes one QoS 1 reading every 20 ms (each PUBACK waits for the spool's fsync'd commit) for
// a quiet window, then for a window during a flood of `--rate` login attempts per second, each a
// new MQTT connection with a wrong password:
//   --flood staff   one staff account (210,000 PBKDF2 iterations) guessed over and over
//   --flood spray   a new unknown username each time (the gateway hashes a dummy of the same cost)
//
//   npm run build && npx tsx bench/auth-flood.ts [--flood staff|spray] [--rate 24] [--window 15s]
//   BENCH_GATEWAY_ROOT=/path/to/other/checkout npx tsx bench/auth-flood.ts   (a baseline build)
import { once } from 'node:events';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { parseDuration } from '../src/config/duration.js';
import { HUMAN_SECRET_ITERATIONS } from '../src/registry/passwords.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { influxQuery } from './lib/influx.js';
import { fmt, say, table, writeResult } from './lib/report.js';
import { LatencyHistogram } from './lib/stats.js';
import { BENCH_STAFF, startGatewaySystem } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    flood: { type: 'string', default: 'staff' },
    rate: { type: 'string', default: '24' },
    window: { type: 'string', default: '15s' },
  },
});
const windowMs = parseDuration(args.window ?? '15s') ?? 15_000;
const rate = Number(args.rate);

/** One login attempt with a wrong password; resolves the CONNACK code (-1: closed without one). */
async function wrongLogin(port: number, username: string): Promise<number> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  await Promise.race([once(socket, 'connect'), once(socket, 'close')]);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      clientId: username,
      username,
      password: Buffer.from('not the password'),
    }),
  );
  await once(socket, 'close');
  const data = Buffer.concat(chunks);
  return data.length >= 4 && data[0] === 0x20 ? (data[3] as number) : -1;
}

const influx = await startInfluxd();
const db = 'bench_auth_flood';
await influxQuery(influx.url, undefined, `CREATE DATABASE ${db}`);
const sys = await startGatewaySystem({
  influxUrl: influx.url,
  db,
  devices: 1,
  staffIterations: HUMAN_SECRET_ITERATIONS,
});
try {
  const probe = sys.devices[0];
  if (!probe) throw new Error('no device');
  const client = await mqtt.connectAsync(sys.mqttUrl, {
    clientId: probe.id,
    username: probe.id,
    ...(probe.password ? { password: probe.password } : {}),
    reconnectPeriod: 0,
  });
  const port = Number(new URL(sys.mqttUrl).port);
  let k = 0;
  const measure = async (flooding: boolean) => {
    const hist = new LatencyHistogram();
    const codes = new Map<number, number>();
    const pending = new Set<Promise<void>>();
    const flood = flooding
      ? setInterval(() => {
          const user = args.flood === 'spray' ? `nobody-${k++}` : BENCH_STAFF;
          const p = wrongLogin(port, user).then((code) => {
            codes.set(code, (codes.get(code) ?? 0) + 1);
          });
          pending.add(p);
          void p.finally(() => pending.delete(p));
        }, 1000 / rate)
      : undefined;
    const end = performance.now() + windowMs;
    while (performance.now() < end) {
      const t0 = performance.now();
      const reading = { ts: new Date().toISOString(), spo2: 97, pulse: 61 };
      await client.publishAsync(probe.topic, JSON.stringify(reading), { qos: 1 });
      hist.add(performance.now() - t0);
      await new Promise((r) => setTimeout(r, Math.max(0, 20 - (performance.now() - t0))));
    }
    if (flood) clearInterval(flood);
    await Promise.all(pending);
    return {
      p50: hist.percentile(50),
      p99: hist.percentile(99),
      count: hist.count,
      codes: Object.fromEntries(codes),
    };
  };
  const quiet = await measure(false);
  const flooded = await measure(true);
  await client.endAsync();
  const row = (name: string, r: typeof quiet) => [
    name,
    fmt(r.p50, 1),
    fmt(r.p99, 1),
    String(r.count),
    JSON.stringify(r.codes),
  ];
  say(
    `## PUBACK of a device during a wrong-password flood (${args.flood}, ${rate}/s, ${windowMs / 1000} s windows)\n\n${table(
      ['window', 'PUBACK p50 ms', 'p99 ms', 'readings', 'flood CONNACK codes'],
      [row('quiet', quiet), row('flood', flooded)],
    )}`,
  );
  say(`raw: ${writeResult('auth-flood', { args, quiet, flooded })}`);
} finally {
  await sys.stop();
  await influx.stop();
}
