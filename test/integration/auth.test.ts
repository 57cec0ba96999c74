import { describe, expect, it } from 'vitest';
import { removeDevice, setDeviceEnabled } from '../../src/registry/edit.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { collect, connackCode, connectDevice, eventually, subackCodes } from '../helpers/mqtt.js';

const A = { id: 'bp-0001', type: 'blood-pressure', site: 'aarhus', subject: 'p-001' };
const B = { id: 'bp-0002', type: 'blood-pressure', site: 'aarhus', subject: 'p-002' };
const C = { id: 'scale-0001', type: 'weight-scale', site: 'aarhus' };
const D = { id: 'scale-0002', type: 'weight-scale', site: 'aarhus' };

const lab = useLab({ devices: [A, B, C, D], staff: ['staff-1'] });

const reading = () =>
  JSON.stringify({ ts: new Date(Date.now() - 1000).toISOString(), systolic: 120, diastolic: 80 });

describe('authentication (CONNACK codes)', () => {
  it('accepts the right credentials with code 0', async () => {
    expect(await connackCode(lab.gw.mqttUrl, { clientId: A.id, username: A.id, password: PASSWORD })).toBe(0);
  });
  it('refuses a wrong password with 4 (bad username or password)', async () => {
    expect(
      await connackCode(lab.gw.mqttUrl, { clientId: A.id, username: A.id, password: 'wrong password' }),
    ).toBe(4);
  });
  it('refuses an unknown device with 4', async () => {
    expect(
      await connackCode(lab.gw.mqttUrl, { clientId: 'ghost-1', username: 'ghost-1', password: PASSWORD }),
    ).toBe(4);
  });
  it('refuses a missing password with 4', async () => {
    expect(await connackCode(lab.gw.mqttUrl, { clientId: A.id, username: A.id })).toBe(4);
  });
  it('refuses a client id that differs from the username with 2 (identifier rejected)', async () => {
    expect(await connackCode(lab.gw.mqttUrl, { clientId: B.id, username: A.id, password: PASSWORD })).toBe(2);
  });
  it('does not let one device take over another device session', async () => {
    const victim = await connectDevice(lab.gw.mqttUrl, B.id);
    expect(await connackCode(lab.gw.mqttUrl, { clientId: B.id, username: A.id, password: PASSWORD })).toBe(2);
    expect(victim.connected).toBe(true);
    await victim.endAsync();
  });
});

describe('topic ACL', () => {
  it('closes a device that publishes under another device id and ingests nothing', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, A.id);
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    const ts = new Date(Date.now() - 2000).toISOString();
    client.publish(
      'lab/aarhus/blood-pressure/bp-0002/telemetry',
      JSON.stringify({ ts, systolic: 111, diastolic: 71 }),
      { qos: 1 },
    );
    await closed;
    // A marker from the device that owns the topic, sent after the denied publish: once it is
    // stored, the denied reading would have been stored too had it been taken in.
    const owner = await connectDevice(lab.gw.mqttUrl, B.id);
    await owner.publishAsync(
      'lab/aarhus/blood-pressure/bp-0002/telemetry',
      JSON.stringify({ ts, systolic: 113, diastolic: 73 }),
      { qos: 1 },
    );
    await owner.endAsync();
    await eventually(
      () => lab.influx.query(lab.gw.db, `SELECT * FROM blood_pressure WHERE systolic = 113`),
      (rows) => rows.length === 1,
    );
    expect(await lab.influx.query(lab.gw.db, `SELECT * FROM blood_pressure WHERE systolic = 111`)).toEqual(
      [],
    );
    expect(
      lab.gw.logLines().some((l) => l.msg === 'publish denied; closing connection' && l.clientId === A.id),
    ).toBe(true);
    client.end(true);
  });

  it('refuses a device subscription to lab/# (SUBACK 128) and delivers its own feedback at QoS 0', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, A.id);
    expect(await subackCodes(client, 'lab/#')).toEqual([128]);
    expect(await subackCodes(client, '$SYS/#')).toEqual([128]);
    expect(await subackCodes(client, 'lab/aarhus/blood-pressure/bp-0002/rejected', 0)).toEqual([128]);
    // aedes reports the requested QoS in the SUBACK but delivers at the QoS the ACL returned.
    const feedback = await collect(client, 'lab/aarhus/blood-pressure/bp-0001/rejected', 1);
    await client.publishAsync('lab/aarhus/blood-pressure/bp-0001/telemetry', '[]', { qos: 1 });
    const [msg] = await feedback.next(1);
    expect(msg?.qos).toBe(0);
    await client.endAsync();
  });

  it('lets staff read valid readings under lab/# but not rejected payloads, and not publish', async () => {
    const staff = await connectDevice(lab.gw.mqttUrl, 'staff-1', { clientId: 'staff-1:console' });
    const seen = await collect(staff, 'lab/+/blood-pressure/+/telemetry');
    expect(seen.granted[0]?.qos).toBe(0);
    const device = await connectDevice(lab.gw.mqttUrl, B.id);
    await device.publishAsync('lab/aarhus/blood-pressure/bp-0002/telemetry', '{"not": "valid"}', { qos: 1 });
    const good = reading();
    await device.publishAsync('lab/aarhus/blood-pressure/bp-0002/telemetry', good, { qos: 1 });
    const [first] = await seen.next(1);
    expect(first?.payload.toString()).toBe(good);
    // A marker after both: when it arrives, anything else delivered on the way would have arrived too.
    const marker = JSON.stringify({
      ts: new Date(Date.now() - 500).toISOString(),
      systolic: 119,
      diastolic: 79,
    });
    await device.publishAsync('lab/aarhus/blood-pressure/bp-0002/telemetry', marker, { qos: 1 });
    await seen.next(2);
    expect(seen.messages.map((m) => m.payload.toString())).toEqual([good, marker]);

    const closed = new Promise<void>((r) => staff.once('close', () => r()));
    staff.publish('lab/aarhus/blood-pressure/bp-0002/telemetry', good, { qos: 1 });
    await closed;
    staff.end(true);
    await device.endAsync();
  });

  it('publishes retained online and offline status for a device', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, C.id);
    const staff = await connectDevice(lab.gw.mqttUrl, 'staff-1', { clientId: 'staff-1:status' });
    const status = await collect(staff, 'lab/aarhus/weight-scale/scale-0001/status');
    const [online] = await status.next(1);
    expect(online).toMatchObject({ retain: true });
    expect(online?.payload.toString()).toBe('online');
    await device.endAsync();
    const [, offline] = await status.next(2);
    expect(offline?.payload.toString()).toBe('offline');
    await staff.endAsync();
    // Retained too: a subscriber arriving later is handed "offline" with the retain flag.
    const later = await connectDevice(lab.gw.mqttUrl, 'staff-1', { clientId: 'staff-1:later' });
    const kept = await collect(later, 'lab/aarhus/weight-scale/scale-0001/status');
    const [retained] = await kept.next(1);
    expect(retained).toMatchObject({ retain: true });
    expect(retained?.payload.toString()).toBe('offline');
    await later.endAsync();
  });
});

describe('registry reload', () => {
  it('disconnects a device within seconds when it is disabled, and refuses it with 5 (not authorized)', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, D.id);
    const closed = new Promise<void>((r) => device.once('close', () => r()));
    await lab.gw.editRegistry((data) => setDeviceEnabled(data, D.id, false));
    await closed;
    // The registry reload closed it (not a keep-alive timeout); how fast is the bench's business.
    expect(
      lab.gw
        .logLines()
        .some((l) => l.msg === 'disconnecting client: registry no longer allows it' && l.clientId === D.id),
    ).toBe(true);
    expect(await connackCode(lab.gw.mqttUrl, { clientId: D.id, username: D.id, password: PASSWORD })).toBe(5);
    device.end(true);
    await lab.gw.editRegistry((data) => setDeviceEnabled(data, D.id, true));
    await eventually(
      () => connackCode(lab.gw.mqttUrl, { clientId: D.id, username: D.id, password: PASSWORD }),
      (code) => code === 0,
    );
  });

  it('disconnects a removed device and keeps the last good registry when the file is broken', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, C.id);
    const closed = new Promise<void>((r) => device.once('close', () => r()));
    await lab.gw.editRegistry((data) => removeDevice(data, C.id));
    await closed;
    device.end(true);
    expect(await connackCode(lab.gw.mqttUrl, { clientId: C.id, username: C.id, password: PASSWORD })).toBe(4);

    const { writeFile } = await import('node:fs/promises');
    await writeFile(lab.gw.registryFile, 'version: 1\ndevices: [\n');
    await eventually(
      async () =>
        lab.gw.logLines().filter((l) => l.msg === 'registry reload failed; keeping the previous registry'),
      (l) => l.length > 0,
    );
    const failure = lab.gw
      .logLines()
      .find((l) => l.msg === 'registry reload failed; keeping the previous registry');
    expect(String(failure?.err)).toContain(`${lab.gw.registryFile}:`);
    expect(await connackCode(lab.gw.mqttUrl, { clientId: A.id, username: A.id, password: PASSWORD })).toBe(0);
  });
});
