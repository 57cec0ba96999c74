import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { parseDuration } from '../src/config/duration.js';
import { HUMAN_SECRET_ITERATIONS } from '../src/registry/passwords.js';
import { startInfluxd } from '../test/helpers/influxd.js';
import { rawLogin } from '../test/helpers/raw-mqtt.js';
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
const wrongLogin = (port: number, username: string) =>
  rawLogin({ port, username, password: 'not the password' });

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
