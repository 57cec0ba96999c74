// Research data that keeps its meaning (issue 18, the export's part): every schema tag as a column
// and as a group of aggregates, a device pseudonym, exact types (Int64, booleans, nanosecond UTC
// time) in every format, time order across subjects, several types in one request, provenance, and
// the 400s and the 502. Room-climate readings go through MQTT and the gateway (so the tags are
// the ones ingest writes); the rest is written to influxd as the gateway writes it.
import { tableFromIPC } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { devicePseudonym, pseudonym } from '../../src/query/pseudonym.js';
import { readRegistryFile } from '../../src/registry/file.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import type { RegistryData } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice } from '../helpers/mqtt.js';
import { ndjson, openProject, untilTokens } from '../helpers/research.js';

const HOUR = 3_600_000;
const T0 = Math.floor((Date.now() - 48 * HOUR) / HOUR) * HOUR;
/** RFC 3339 at `ms` after T0 with `ns` more nanoseconds, 9 fraction digits (the export's own form). */
const at = (ms: number, ns = 0) =>
  `${new Date(T0 + ms).toISOString().slice(0, 19)}.${String(((T0 + ms) % 1000) * 1_000_000 + ns).padStart(9, '0')}Z`;
const nsAt = (ms: number, ns = 0) => BigInt(T0 + ms) * 1_000_000n + BigInt(ns);

const HUMIDITY = 41.5;
// Room climate of p-1: two rooms on rc-1, and rc-2 in the kitchen as well (a second device).
const CLIMATE: [
  device: string,
  minutes: number,
  ns: number,
  room: string,
  temperature: number,
  co2: number,
][] = [
  ['rc-1', 10, 123_456_789, 'kitchen', 20, 700],
  ['rc-1', 20, 5, 'bedroom', 18, 500],
  ['rc-1', 30, 0, 'kitchen', 22, 900],
  ['rc-1', 40, 0, 'bedroom', 17, 601],
  ['rc-2', 70, 0, 'kitchen', 19, 650],
];
// Bed sensors of three subjects, interleaved in time; p-2 also has a simulated device.
const BEDS: [subject: string, device: string, minutes: number, heartRate: number, extra?: string][] = [
  ['p-3', 'bed-3', 1, 61],
  ['p-1', 'bed-1', 2, 62],
  ['p-2', 'bed-2', 3, 63],
  ['p-3', 'bed-3', 4, 64],
  ['p-2', 'bed-2', 5, 65],
  ['p-1', 'bed-1', 6, 66],
  ['p-2', 'sim-9', 7, 99, 'provenance=simulated,'],
];
const bedLine = ([subject, device, minutes, hr, extra = '']: (typeof BEDS)[number]) =>
  `bed_sensor,device_id=${device},device_type=bed-sensor,${extra}schema_version=1,site=s,subject=${subject} heartRate=${hr}i,occupied=true ${nsAt(minutes * 60_000)}`;

let token = '';
let secret = '';
const lab = useLab({
  devices: [
    { id: 'rc-1', type: 'room-climate', site: 'home-1', subject: 'p-1' },
    { id: 'rc-2', type: 'room-climate', site: 'home-1', subject: 'p-1' },
  ],
});
beforeAll(async () => {
  for (const device of ['rc-1', 'rc-2']) {
    const readings = CLIMATE.filter(([d]) => d === device).map(([, min, ns, room, temperature, co2]) => ({
      ts: at(min * 60_000, ns),
      room,
      temperature,
      humidity: HUMIDITY,
      co2,
    }));
    const c = await connectDevice(lab.gw.mqttUrl, device);
    await c.publishAsync(`lab/home-1/room-climate/${device}/telemetry`, JSON.stringify({ readings }), {
      qos: 1,
    });
    await c.endAsync();
  }
  await lab.gw.app.drain.idle(10_000);
  const res = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, {
    method: 'POST',
    body: BEDS.map(bedLine).join('\n'),
  });
  expect(res.status).toBe(204);
  await lab.gw.editRegistry((d0) => {
    let d: RegistryData = addProject(d0, openProject('cols', ['room-climate', 'bed-sensor', 'weight-scale']));
    for (const s of ['p-1', 'p-2', 'p-3']) d = setConsent(d, 'cols', s, { on: openProject('x', []).from });
    const r = issueToken(d, { project: 'cols', researcher: 'r', expires: new Date(Date.now() + 24 * HOUR) });
    token = r.token;
    return r.data;
  });
  await untilTokens(lab.gw, 1);
  secret = lab.gw.app.registry.current().data.projects[0]?.secret as string;
}, 60_000);

const get = (qs: string, gw = lab.gw) =>
  fetch(`http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/cols/readings?${qs}`, {
    headers: { authorization: `Bearer ${token}` },
  });

describe('tags, devices and types as columns', () => {
  it('puts out each room as its own column value and each device as its pseudonym, never its id', async () => {
    const rows = await ndjson(await get('type=room-climate&format=ndjson'));
    const subject = pseudonym(secret, 'p-1');
    expect(rows).toEqual(
      CLIMATE.map(([device, min, ns, room, temperature, co2]) => ({
        time: at(min * 60_000, ns),
        subject,
        device: devicePseudonym(secret, device),
        device_type: 'room-climate',
        schema_version: 1,
        provenance: 'real',
        room,
        temperature,
        humidity: HUMIDITY,
        co2,
        battery: null,
      })),
    );
    expect(JSON.stringify(rows)).not.toMatch(/rc-1|rc-2|p-1|home-1/);
  });

  it('aggregates each room (and device) separately: every=1h&fn=mean gives one row per room and hour', async () => {
    const rows = await ndjson(
      await get('type=room-climate&fields=temperature,co2&every=1h&fn=mean&format=ndjson'),
    );
    const hour = (h: number) => at(h * HOUR);
    const d1 = devicePseudonym(secret, 'rc-1');
    const d2 = devicePseudonym(secret, 'rc-2');
    expect(rows.map((r) => [r.time, r.device, r.room, r.temperature, r.co2])).toEqual(
      [
        [hour(0), d1, 'bedroom', 17.5, 550.5],
        [hour(0), d1, 'kitchen', 21, 800],
        [hour(1), d2, 'kitchen', 19, 650],
      ].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
    );
    const max = await ndjson(
      await get('type=room-climate&fields=co2&tags=room&every=1h&fn=max&format=ndjson'),
    );
    expect(max.map((r) => [r.room, r.co2])).toEqual(
      expect.arrayContaining([
        ['kitchen', 900],
        ['bedroom', 601],
      ]),
    );
  });

  it('types integers as Int64 and the time as Timestamp(ns, UTC) in Arrow, each value exact', async () => {
    const res = await get('type=room-climate&format=arrow');
    const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    const type = (name: string) => String(table.schema.fields.find((f) => f.name === name)?.type);
    expect(table.schema.fields.map((f) => f.name)).toEqual([
      'time',
      'subject',
      'device',
      'device_type',
      'schema_version',
      'provenance',
      'room',
      'temperature',
      'humidity',
      'co2',
      'battery',
    ]);
    expect([type('time'), type('co2'), type('battery'), type('temperature'), type('room')]).toEqual([
      'Timestamp<NANOSECOND, UTC>',
      'Int64',
      'Int64',
      'Float64',
      'Utf8',
    ]);
    const times = [...(table.getChild('time')?.data.flatMap((d) => [...(d.values as BigInt64Array)]) ?? [])];
    expect(times).toEqual(CLIMATE.map(([, min, ns]) => nsAt(min * 60_000, ns)));
    expect(table.getChild('co2')?.toArray()).toEqual(BigInt64Array.from(CLIMATE.map((c) => BigInt(c[5]))));
    expect([...(table.getChild('room') ?? [])]).toEqual(CLIMATE.map((c) => c[3]));
    expect([...(table.getChild('device') ?? [])]).toEqual(CLIMATE.map((c) => devicePseudonym(secret, c[0])));
    // Stacked types: text columns a type does not have are null, not empty strings.
    const both = tableFromIPC(
      new Uint8Array(await (await get('type=bed-sensor,room-climate&format=arrow')).arrayBuffer()),
    );
    expect([...(both.getChild('room') ?? [])]).toEqual([
      ...BEDS.filter((b) => !b[4]).map(() => null),
      ...CLIMATE.map((c) => c[3]),
    ]);
    expect([...(both.getChild('device_type') ?? [])].slice(-1)).toEqual(['room-climate']);
    const ms = tableFromIPC(
      new Uint8Array(await (await get('type=room-climate&format=arrow&precision=ms')).arrayBuffer()),
    );
    expect(String(ms.schema.fields[0]?.type)).toBe('Timestamp<MILLISECOND, UTC>');
  });

  it('keeps a nanosecond timestamp, integers and booleans in csv, ndjson and json', async () => {
    const first = CLIMATE[0] as (typeof CLIMATE)[number];
    const time = at(first[1] * 60_000, first[2]);
    expect(time).toMatch(/\.\d{2}3456789Z$/);
    const csv = (await (await get('type=room-climate&format=csv')).text()).trim().split('\n');
    expect(csv[0]).toBe(
      'time,subject,device,device_type,schema_version,provenance,room,temperature,humidity,co2,battery',
    );
    expect(csv[1]).toBe(
      `${time},${pseudonym(secret, 'p-1')},${devicePseudonym(secret, 'rc-1')},room-climate,1,real,kitchen,20,41.5,700,`,
    );
    const nd = await ndjson(await get('type=room-climate&format=ndjson'));
    const json = (await (await get('type=room-climate&format=json')).json()) as Record<string, unknown>[];
    for (const rows of [nd, json]) expect(rows[0]).toMatchObject({ time, co2: 700, schema_version: 1 });
    const beds = await ndjson(await get('type=bed-sensor&fields=occupied,heartRate&format=ndjson'));
    expect(beds[0]).toMatchObject({ occupied: true, heartRate: 61 });
    const us = await ndjson(await get('type=room-climate&format=ndjson&precision=us'));
    expect(us[0]?.time).toBe(time.replace(/\d{3}Z$/, 'Z'));
  });
});

describe('order, several types, provenance', () => {
  const bedRows = BEDS.filter((b) => !b[4]);

  it('merges three subjects in time order (order=time, the default), and one after the other with order=subject', async () => {
    const rows = await ndjson(await get('type=bed-sensor&fields=heartRate&format=ndjson'));
    expect(rows.map((r) => [r.time, r.subject, r.heartRate])).toEqual(
      bedRows.map(([s, , min, hr]) => [at(min * 60_000), pseudonym(secret, s), hr]),
    );
    const bySubject = await ndjson(await get('type=bed-sensor&fields=heartRate&order=subject&format=ndjson'));
    const expected = [...bedRows].sort(
      (a, b) => pseudonym(secret, a[0]).localeCompare(pseudonym(secret, b[0])) || a[2] - b[2],
    );
    expect(bySubject.map((r) => r.heartRate)).toEqual(expected.map((b) => b[3]));
  });

  it('stacks two device types in one request: one row per reading, the columns of both', async () => {
    const rows = await ndjson(await get('type=bed-sensor,room-climate&fields=heartRate,co2&format=ndjson'));
    expect(rows).toHaveLength(bedRows.length + CLIMATE.length);
    expect(rows.map((r) => r.time)).toEqual([...rows.map((r) => r.time)].sort());
    expect(Object.keys(rows[0] ?? {})).toEqual([
      'time',
      'subject',
      'device',
      'device_type',
      'schema_version',
      'provenance',
      'room',
      'heartRate',
      'co2',
    ]);
    const climate = rows.find((r) => r.device_type === 'room-climate');
    const bed = rows.find((r) => r.device_type === 'bed-sensor');
    expect(climate).toMatchObject({ heartRate: null, co2: 700, room: 'kitchen' });
    expect(bed).toMatchObject({ heartRate: 61, co2: null, room: null });
  });

  it('leaves simulated readings out unless include=simulated, and labels them when included', async () => {
    const real = await ndjson(await get('type=bed-sensor&format=ndjson'));
    expect(real.map((r) => r.provenance)).toEqual(bedRows.map(() => 'real'));
    const all = await ndjson(await get('type=bed-sensor&format=ndjson&include=simulated'));
    expect(all.filter((r) => r.provenance === 'simulated').map((r) => [r.heartRate, r.device])).toEqual([
      [99, devicePseudonym(secret, 'sim-9')],
    ]);
  });
});

describe('bad input and a refused query', () => {
  it.each([
    ['type=room-climate&tags=probe', /tag "probe" is not a tag of room-climate; tags: room/],
    ['type=room-climate&fields=spo2', /field "spo2" is not released for room-climate/],
    ['type=room-climate,pulse-oximeter', /type must be one of the project's device types/],
    ['type=room-climate&order=device', /order must be one of time, subject/],
    ['type=room-climate&precision=ps', /precision must be one of s, ms, us, ns/],
  ])('answers %s with 400 and the reason', async (qs, message) => {
    const res = await get(qs);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
  });

  it("answers 502 with InfluxDB's message when InfluxDB refuses the query, never a 200 that breaks off", async () => {
    const gw2 = await lab.startGateway({});
    const registry = await readRegistryFile(lab.gw.registryFile);
    await gw2.editRegistry(() => registry);
    await untilTokens(gw2, 1);
    const drop = await fetch(`${lab.influx.url}/query`, {
      method: 'POST',
      body: new URLSearchParams({ q: `DROP DATABASE "${gw2.db}"` }),
    });
    expect(drop.status).toBe(200);
    for (const format of ['csv', 'arrow']) {
      const res = await get(`type=bed-sensor&format=${format}`, gw2);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: string }).error).toMatch(
        new RegExp(`^InfluxDB refused the export's query: database not found: ${gw2.db};`),
      );
    }
  });
  it('answers 502 naming an InfluxDB that cannot be reached', async () => {
    await lab.influx.kill();
    const res = await get('type=bed-sensor&format=ndjson');
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /^InfluxDB could not be reached: .*ECONNREFUSED/,
    );
    // The file's lab restarts influxd after this test.
  });
});
