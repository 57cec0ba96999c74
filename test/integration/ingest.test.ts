import { describe, expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { collect, connackCode, connectDevice, eventually, mosquittoPub } from '../helpers/mqtt.js';

const OX = { id: 'ox-0001', type: 'pulse-oximeter', site: 'odense', subject: 'p-017' };
const OX2 = { id: 'ox-0002', type: 'pulse-oximeter', site: 'odense', subject: 'p-018' };
const FALL = { id: 'fall-0001', type: 'fall-detector', site: 'vejle' };

const lab = useLab({ devices: [OX, OX2, FALL], staff: ['staff-1'] });

const recent = (offsetMs = 0) => new Date(Date.now() - 60_000 + offsetMs).toISOString();
const rows = (where: string, m = 'pulse_oximeter') =>
  lab.influx.query<Record<string, unknown>>(lab.gw.db, `SELECT * FROM ${m} WHERE ${where}`);

describe('a valid reading', () => {
  it('from MQTT.js lands as the exact point: measurement, tags, typed fields, nanosecond timestamp', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const ts = new Date(Date.now() - 30_000)
      .toISOString()
      .replace('Z', '123456Z')
      .replace(/\.(\d{3})123456Z/, '.$1123456Z');
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0001/telemetry',
      JSON.stringify({ ts, spo2: 97, pulse: 72, perfusionIndex: 3, probe: 'finger', battery: 88 }),
      { qos: 1 },
    );
    const found = await eventually(
      () => rows(`"perfusionIndex" = 3`),
      (r) => r.length === 1,
    );
    const expectedNs = (BigInt(Date.parse(ts)) * 1_000_000n + 123_456n).toString();
    expect(found[0]).toEqual({
      time: Number(expectedNs),
      battery: 88,
      device_id: 'ox-0001',
      device_type: 'pulse-oximeter',
      perfusionIndex: 3,
      probe: 'finger',
      provenance: 'real',
      pulse: 72,
      schema_version: '1',
      site: 'odense',
      spo2: 97,
      subject: 'p-017',
    });
    // The timestamp to the nanosecond, read as text so no float rounding hides an error.
    const res = await fetch(
      `${lab.influx.url}/query?db=${lab.gw.db}&epoch=ns&q=${encodeURIComponent('SELECT spo2 FROM pulse_oximeter WHERE "perfusionIndex" = 3')}`,
    );
    expect(await res.text()).toContain(`[${expectedNs},97]`);
    const fieldTypes = await lab.influx.query<{ fieldKey: string; fieldType: string }>(
      lab.gw.db,
      'SHOW FIELD KEYS FROM pulse_oximeter',
    );
    expect(Object.fromEntries(fieldTypes.map((f) => [f.fieldKey, f.fieldType]))).toEqual({
      battery: 'integer',
      perfusionIndex: 'float',
      pulse: 'integer',
      spo2: 'integer',
    });
    await client.endAsync();
  });

  it('from mosquitto_pub at QoS 1 lands as the exact point', async () => {
    const ts = recent(1);
    const payload = JSON.stringify({ ts, spo2: 91, pulse: 101 });
    const pub = await mosquittoPub([
      '-h',
      '127.0.0.1',
      '-p',
      String(lab.gw.app.mqttPort),
      '-u',
      OX2.id,
      '-P',
      PASSWORD,
      '-i',
      OX2.id,
      '-q',
      '1',
      '-t',
      'lab/odense/pulse-oximeter/ox-0002/telemetry',
      '-m',
      payload,
    ]);
    expect(pub).toEqual({ code: 0, stderr: '' });
    const found = await eventually(
      () => rows(`device_id = 'ox-0002' AND spo2 = 91`),
      (r) => r.length === 1,
    );
    expect(found[0]).toMatchObject({
      time: Date.parse(ts) * 1e6,
      pulse: 101,
      subject: 'p-018',
      site: 'odense',
    });
  });

  it('an event message lands in the event measurement with its string field', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, FALL.id);
    const ts = recent(2);
    await client.publishAsync(
      'lab/vejle/fall-detector/fall-0001/event',
      JSON.stringify({ ts, event: 'fall', confidence: 0.93, room: 'bathroom' }),
      { qos: 1 },
    );
    const found = await eventually(
      () => rows(`device_id = 'fall-0001'`, 'fall_detector_event'),
      (r) => r.length === 1,
    );
    expect(found[0]).toMatchObject({
      event: 'fall',
      confidence: 0.93,
      room: 'bathroom',
      site: 'vejle',
      device_type: 'fall-detector',
    });
    expect(found[0]).not.toHaveProperty('subject');
    await client.endAsync();
  });
});

describe('rejections', () => {
  it('answers an out-of-range reading on the rejected topic, logs it to disk and stores nothing', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0001/rejected');
    expect(feedback.granted[0]?.qos).toBe(0);
    const ts = recent(3);
    const payload = JSON.stringify({ ts, spo2: 104, pulse: 70 });
    await client.publishAsync('lab/odense/pulse-oximeter/ox-0001/telemetry', payload, { qos: 1 });
    const [msg] = await feedback.next(1);
    const body = JSON.parse(msg?.payload.toString() ?? '{}') as Record<string, unknown>;
    expect(body).toEqual({
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      topic: 'lab/odense/pulse-oximeter/ox-0001/telemetry',
      reason: 'schema',
      errors: [{ path: '/spo2', message: 'must be <= 100', value: 104 }],
      readingIndex: 0,
      schema: 'pulse-oximeter@1',
    });
    const log = await lab.gw.rejectsLog();
    expect(log.find((l) => l.payload === payload)).toMatchObject({
      clientId: 'ox-0001',
      topic: 'lab/odense/pulse-oximeter/ox-0001/telemetry',
      payloadEncoding: 'utf8',
      rejections: [{ reason: 'schema', readingIndex: 0 }],
    });
    // A valid marker published after it on the same connection is stored: anything the rejected
    // reading could have written would be stored by now (one spool, one writer, in order).
    const marker = recent(4);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0001/telemetry',
      JSON.stringify({ ts: marker, spo2: 95, pulse: 71 }),
      { qos: 1 },
    );
    await eventually(
      () => rows(`time = '${marker}'`),
      (r) => r.length === 1,
    );
    expect(await rows(`time = '${ts}'`)).toEqual([]);
    await client.endAsync();
  });

  it('keeps 97 readings of a batch of 100 and reports the 3 invalid ones with their indexes in one message', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX2.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0002/rejected');
    const base = Date.now() - 3_600_000;
    const readings = Array.from({ length: 100 }, (_, i) => ({
      ts: new Date(base + i * 1000).toISOString(),
      spo2: 90 + (i % 10),
      pulse: 60 + (i % 30),
      probe: 'ear',
    }));
    readings[7] = { ...readings[7], spo2: 120 } as (typeof readings)[number];
    (readings[42] as Record<string, unknown>).pulse = 'fast';
    delete (readings[99] as Record<string, unknown>).spo2;
    await client.publishAsync('lab/odense/pulse-oximeter/ox-0002/telemetry', JSON.stringify({ readings }), {
      qos: 1,
    });
    // One feedback message for the whole batch: the first rejection in the documented fields,
    // all of them in `rejections`.
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '{}')).toEqual({
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      topic: 'lab/odense/pulse-oximeter/ox-0002/telemetry',
      reason: 'schema',
      errors: [{ path: '/spo2', message: 'must be <= 100', value: 120 }],
      readingIndex: 7,
      schema: 'pulse-oximeter@1',
      rejectionCount: 3,
      rejections: [
        {
          reason: 'schema',
          readingIndex: 7,
          errors: [{ path: '/spo2', message: 'must be <= 100', value: 120 }],
        },
        {
          reason: 'schema',
          readingIndex: 42,
          errors: [{ path: '/pulse', message: 'must be integer', value: 'fast' }],
        },
        { reason: 'schema', readingIndex: 99, errors: [{ path: '/spo2', message: 'is required' }] },
      ],
      rejectionsOmitted: 0,
    });
    const stored = await eventually(
      () =>
        lab.influx.query<{ count: number }>(
          lab.gw.db,
          `SELECT count(pulse) FROM pulse_oximeter WHERE probe = 'ear'`,
        ),
      (r) => r[0]?.count === 97,
    );
    expect(stored[0]?.count).toBe(97);
    await client.endAsync();
  });

  it('rejects a reading stamped 10 minutes in the future with reason "time"', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0001/rejected');
    const ts = new Date(Date.now() + 600_000).toISOString();
    await client.publishAsync(
      'lab/odense/pulse-oximeter/ox-0001/telemetry',
      JSON.stringify({ ts, spo2: 96, pulse: 66 }),
      { qos: 1 },
    );
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '')).toMatchObject({
      reason: 'time',
      readingIndex: 0,
      errors: [{ path: '/ts', value: ts }],
    });
    await client.endAsync();
  });

  it('answers hostile payloads cleanly and keeps serving other devices', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0001/rejected');
    const topic = 'lab/odense/pulse-oximeter/ox-0001/telemetry';
    const hostile = [
      '{"ts": "2026-11-22T10:00:00Z", "spo2": 97,',
      'null',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      JSON.stringify({ ts: recent(4), spo2: 97, pulse: 70 }).replace(
        '{',
        '{"__proto__": {"polluted": true}, ',
      ),
      '',
    ];
    for (const p of hostile) await client.publishAsync(topic, p, { qos: 1 });
    const got = await feedback.next(hostile.length);
    expect(got.map((m) => (JSON.parse(m.payload.toString()) as { reason: string }).reason)).toEqual([
      'json',
      'schema',
      'schema',
      'schema',
      'json',
    ]);
    const proto = JSON.parse(got[3]?.payload.toString() ?? '') as { errors: { path: string }[] };
    expect(proto.errors).toEqual([{ path: '/__proto__', message: 'is not a property of this device type' }]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    // A 1 MiB payload is over the 256 KiB packet limit: that connection is closed, nothing stored.
    const big = await connectDevice(lab.gw.mqttUrl, OX2.id);
    const closed = new Promise<void>((r) => big.once('close', () => r()));
    big.publish('lab/odense/pulse-oximeter/ox-0002/telemetry', Buffer.alloc(1024 * 1024, 0x20), { qos: 1 });
    await closed;
    await eventually(
      () => lab.gw.rejectsLog(),
      (l) => l.some((e) => e.clientId === 'ox-0002' && JSON.stringify(e.rejections).includes('too-large')),
    );
    big.end(true);

    // The gateway still serves: the first device's next valid reading lands.
    const ts = recent(5);
    await client.publishAsync(topic, JSON.stringify({ ts, spo2: 93, pulse: 77 }), { qos: 1 });
    await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    await client.endAsync();
  });

  it('rejects an unknown channel with reason "topic"', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0001/rejected');
    await client.publishAsync('lab/odense/pulse-oximeter/ox-0001/vitals', '{}', { qos: 1 });
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '')).toMatchObject({
      reason: 'topic',
      topic: 'lab/odense/pulse-oximeter/ox-0001/vitals',
    });
    await client.endAsync();
  });
});

describe('operations', () => {
  it('answers /healthz', async () => {
    const res = await fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  it('logs no payload content and no password at info level', async () => {
    // Its own traffic: a failed login, a stored reading and a rejected one, each seen in the log.
    const from = lab.gw.logLines().length;
    const denied = await connackCode(lab.gw.mqttUrl, {
      clientId: OX2.id,
      username: OX2.id,
      password: 'correct horse x',
    });
    expect(denied).toBe(4);
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const feedback = await collect(client, 'lab/odense/pulse-oximeter/ox-0001/rejected');
    const topic = 'lab/odense/pulse-oximeter/ox-0001/telemetry';
    await client.publishAsync(topic, JSON.stringify({ ts: recent(6), spo2: 101, pulse: 70 }), { qos: 1 });
    await feedback.next(1);
    const ts = recent(7);
    await client.publishAsync(topic, JSON.stringify({ ts, spo2: 96, pulse: 66 }), { qos: 1 });
    await eventually(
      () => rows(`time = '${ts}'`),
      (r) => r.length === 1,
    );
    await client.endAsync();
    const mine = () =>
      lab.gw
        .logLines()
        .slice(from)
        .map((l) => JSON.stringify(l));
    await eventually(
      async () => mine(),
      (l) => l.some((x) => x.includes(OX2.id)) && l.some((x) => x.includes(OX.id)),
    );
    const infoAndAbove = lab.gw
      .logLines()
      .filter((l) => (l.level as number) >= 30)
      .map((l) => JSON.stringify(l));
    for (const line of infoAndAbove) {
      expect(line).not.toMatch(/spo2|"pulse"|perfusionIndex|__proto__|fall|bathroom/);
      expect(line).not.toContain('correct horse');
    }
  });
});
