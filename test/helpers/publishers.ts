// Simulated devices for fault tests: each publishes numbered pulse-oximeter readings at QoS 1 with
// MQTT.js, reconnects (to wherever the gateway is now) when its connection drops, and records which
// readings were acknowledged. compare() then checks InfluxDB against the acknowledgements.
import mqtt, { type MqttClient } from 'mqtt';
import { PASSWORD } from './gateway.js';
import type { Influxd } from './influxd.js';

export interface Fleet {
  readonly sent: number;
  readonly acked: number;
  /** deviceId → (timestamp ns → spo2) for every acknowledged reading. */
  readonly ackedByDevice: Map<string, Map<string, number>>;
  /** Resolves once at least n readings are acknowledged in total. */
  untilAcked(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  ids: string[];
  site: string;
  url: () => string;
  /** Pause between two publishes of one device. */
  intervalMs: number;
  /** Most readings per device (then it stops by itself). */
  maxPerDevice?: number;
  ackTimeoutMs?: number;
}

const BASE = BigInt(Date.now() - 3_600_000) * 1_000_000n;

export function startFleet(opts: FleetOptions): Fleet {
  const ackedByDevice = new Map<string, Map<string, number>>();
  let sent = 0;
  let acked = 0;
  let running = true;
  const clients = new Set<MqttClient>();

  const connect = (id: string) =>
    new Promise<MqttClient | undefined>((resolve) => {
      const c = mqtt.connect(opts.url(), {
        clientId: id,
        username: id,
        password: PASSWORD,
        reconnectPeriod: 0,
        connectTimeout: 3000,
      });
      c.once('connect', () => {
        clients.add(c);
        resolve(c);
      });
      c.once('error', () => resolve(undefined));
      c.once('close', () => resolve(undefined));
    });

  const device = async (index: number, id: string) => {
    const mine = new Map<string, number>();
    ackedByDevice.set(id, mine);
    let client: MqttClient | undefined;
    for (let seq = 0; running && seq < (opts.maxPerDevice ?? Number.POSITIVE_INFINITY); seq++) {
      while (running && !client?.connected) {
        client?.end(true);
        client = await connect(id);
        if (!client) await new Promise((r) => setTimeout(r, 200));
      }
      if (!running || !client) break;
      // Distinct, reproducible timestamp and value per reading.
      const ns = BASE + BigInt(seq) * 1_000_000n + BigInt(index) * 1000n + 123n;
      const spo2 = 70 + (seq % 30);
      const secs = ns / 1_000_000_000n;
      const ts = `${new Date(Number(secs) * 1000).toISOString().slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
      sent++;
      const c = client;
      let timer: NodeJS.Timeout | undefined;
      let onClose: (() => void) | undefined;
      const ok = await Promise.race([
        c
          .publishAsync(
            `lab/${opts.site}/pulse-oximeter/${id}/telemetry`,
            JSON.stringify({ ts, spo2, pulse: 60 + (index % 40) }),
            { qos: 1 },
          )
          .then(
            () => true,
            () => false,
          ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), opts.ackTimeoutMs ?? 10_000);
        }),
        // A dropped connection never acknowledges what was in flight.
        new Promise<boolean>((r) => {
          onClose = () => r(false);
          c.once('close', onClose);
        }),
      ]);
      clearTimeout(timer);
      if (onClose) c.removeListener('close', onClose);
      if (ok) {
        mine.set(ns.toString(), spo2);
        acked++;
      } else {
        c.end(true);
      }
      await new Promise((r) => setTimeout(r, opts.intervalMs));
    }
    client?.end(true);
  };

  const loops = opts.ids.map((id, i) => device(i, id));
  return {
    get sent() {
      return sent;
    },
    get acked() {
      return acked;
    },
    ackedByDevice,
    async untilAcked(n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (acked < n) {
        if (Date.now() > deadline) throw new Error(`only ${acked} of ${n} readings acknowledged`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of clients) c.end(true);
    },
  };
}

export interface Comparison {
  sent: number;
  acked: number;
  stored: number;
  lost: number;
  wrongValues: number;
}

/** Every acknowledged reading must be in InfluxDB with its value; nothing beyond what was sent. */
export async function compareWithInflux(
  fleet: Fleet,
  influx: Influxd,
  db: string,
  timeoutMs = 60_000,
): Promise<Comparison> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let lost = 0;
    let wrongValues = 0;
    let stored = 0;
    for (const [id, acked] of fleet.ackedByDevice) {
      // Exact nanosecond timestamps: read from the raw JSON text, never through float64 numbers.
      const q = encodeURIComponent(`SELECT spo2 FROM pulse_oximeter WHERE device_id = '${id}'`);
      const text = await (await fetch(`${influx.url}/query?db=${db}&epoch=ns&q=${q}`)).text();
      const have = new Map([...text.matchAll(/\[(\d+),(\d+)\]/g)].map((m) => [m[1] as string, Number(m[2])]));
      stored += have.size;
      for (const [ns, spo2] of acked) {
        const got = have.get(ns);
        if (got === undefined) lost++;
        else if (got !== spo2) wrongValues++;
      }
    }
    const result = { sent: fleet.sent, acked: fleet.acked, stored, lost, wrongValues };
    if ((lost === 0 && wrongValues === 0) || Date.now() > deadline) return result;
    await new Promise((r) => setTimeout(r, 250));
  }
}
