// Who a connection is, checked when it matters: wills against the registry as it is when they fire,
// client ids that belong to their owners, and staff sessions that keep no backlog while offline.
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { removeDevice, setDeviceEnabled } from '../../src/registry/edit.js';
import type { RegistryData } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { connackCode, connectDevice, eventually, settled } from '../helpers/mqtt.js';

const bp = (id: string) => ({ id, type: 'blood-pressure', site: 'aarhus' });
const DISABLED = bp('bp-0101');
const REMOVED = bp('bp-0102');
const MOVED = bp('bp-0103');
const FOREIGN = bp('bp-0104');
const CONTROL = bp('bp-0105');
const VICTIM = bp('bp-0106');

const lab = useLab({
  devices: [DISABLED, REMOVED, MOVED, FOREIGN, CONTROL, VICTIM],
  staff: ['staff-1'],
});

const topicOf = (d: { id: string; site: string }) => `lab/${d.site}/blood-pressure/${d.id}/telemetry`;
const reading = (systolic: number) =>
  JSON.stringify({ ts: new Date(Date.now() - 1000).toISOString(), systolic, diastolic: 80 });
const rowsWith = (systolic: number) =>
  lab.influx.query(lab.gw.db, `SELECT * FROM blood_pressure WHERE systolic = ${systolic}`);
const deniedFor = (clientId: string) =>
  lab.gw.logLines().filter((l) => l.msg === 'publish denied; closing connection' && l.clientId === clientId);

/** A reading of a device still allowed, stored: the writer has drained everything spooled before it. */
async function storeControlReading(systolic: number) {
  const control = await connectDevice(lab.gw.mqttUrl, CONTROL.id);
  await control.publishAsync(topicOf(CONTROL), reading(systolic), { qos: 1 });
  await eventually(
    () => rowsWith(systolic),
    (rows) => rows.length === 1,
  );
  await control.endAsync();
}

/** Waits until the will was either stored or denied, then proves it was denied and never stored. */
async function expectWillDropped(clientId: string, systolic: number, reason: RegExp, control: number) {
  await eventually(
    async () => ({ stored: (await rowsWith(systolic)).length, denied: deniedFor(clientId).length }),
    (s) => s.stored > 0 || s.denied > 0,
  );
  await storeControlReading(control);
  expect(await rowsWith(systolic)).toEqual([]);
  expect(deniedFor(clientId)).toMatchObject([{ reason: expect.stringMatching(reason) }]);
}

async function connectWithWill(device: { id: string; site: string }, willTopic: string, systolic: number) {
  const client = await connectDevice(lab.gw.mqttUrl, device.id, {
    will: { topic: willTopic, payload: Buffer.from(reading(systolic)), qos: 1, retain: false },
  });
  const closed = new Promise<void>((r) => client.once('close', () => r()));
  return { client, closed };
}

const moveTo = (id: string, site: string) => (data: RegistryData) => ({
  ...data,
  sites: [...data.sites, { id: site }],
  devices: data.devices.map((d) => (d.id === id ? { ...d, site } : d)),
});

describe('last wills are checked against the registry as it is when they fire', () => {
  it.each([
    [
      'disabled',
      DISABLED,
      (data: RegistryData) => setDeviceEnabled(data, DISABLED.id, false),
      /disabled/,
      171,
    ],
    [
      'removed',
      REMOVED,
      (data: RegistryData) => removeDevice(data, REMOVED.id),
      /no longer in the registry/,
      172,
    ],
    ['moved', MOVED, moveTo(MOVED.id, 'odense'), /moved to lab\/odense\//, 173],
  ])(
    'does not store the will of a device %s while connected',
    async (_what, device, change, reason, systolic) => {
      const { client, closed } = await connectWithWill(device, topicOf(device), systolic);
      await lab.gw.editRegistry(change);
      // enforceRegistry closes the connection; that close fires the will.
      await closed;
      client.end(true);
      await expectWillDropped(device.id, systolic, reason, systolic + 10);
    },
  );

  it('does not store a will published on another device topic', async () => {
    const { client, closed } = await connectWithWill(FOREIGN, topicOf(VICTIM), 174);
    // Drop the socket without DISCONNECT, so the broker fires the will.
    client.stream.destroy();
    await closed;
    client.end(true);
    await expectWillDropped(
      FOREIGN.id,
      174,
      /may publish only under lab\/aarhus\/blood-pressure\/bp-0104\//,
      184,
    );
  });
});

describe('client ids of devices belong to their devices', () => {
  it('refuses staff with a device client id (CONNACK 2) and leaves the device connected and stored', async () => {
    const device = await connectDevice(lab.gw.mqttUrl, VICTIM.id);
    const code = await connackCode(lab.gw.mqttUrl, {
      clientId: VICTIM.id,
      username: 'staff-1',
      password: PASSWORD,
    });
    expect(code).toBe(2);
    expect(
      lab.gw
        .logLines()
        .find((l) => l.msg === 'connection refused' && l.username === 'staff-1' && l.clientId === VICTIM.id),
    ).toMatchObject({
      reason: 'client id "bp-0106" must be the account id "staff-1" or start with "staff-1:"',
    });
    expect(device.connected).toBe(true);
    await device.publishAsync(topicOf(VICTIM), reading(191), { qos: 1 });
    await eventually(
      () => rowsWith(191),
      (rows) => rows.length === 1,
    );
    expect(device.connected).toBe(true);
    await device.endAsync();
  });

  it('accepts staff with its account id or "{account}:{anything}" as client id, and nothing else', async () => {
    const as = (clientId: string) =>
      connackCode(lab.gw.mqttUrl, { clientId, username: 'staff-1', password: PASSWORD });
    expect(await as('staff-1')).toBe(0);
    expect(await as('staff-1:console')).toBe(0);
    expect(await as('staff-1-console')).toBe(2);
  });
});

describe('staff sessions keep no backlog while offline', () => {
  it('delivers nothing queued to a persistent staff session on reconnect, and live messages after', async () => {
    const opts = { clientId: 'staff-1:persistent', clean: false };
    const first = await connectDevice(lab.gw.mqttUrl, 'staff-1', opts);
    await first.subscribeAsync('lab/#', { qos: 1 });
    await first.endAsync();

    const device = await connectDevice(lab.gw.mqttUrl, CONTROL.id);
    for (let i = 0; i < 50; i++) await device.publishAsync(topicOf(CONTROL), reading(200 + i), { qos: 1 });

    // The listener is attached before CONNACK, so a queued backlog could not slip past it.
    const received: number[] = [];
    const staff = mqtt.connect(lab.gw.mqttUrl, {
      ...opts,
      username: 'staff-1',
      password: PASSWORD,
      reconnectPeriod: 0,
    });
    staff.on('message', (topic, payload) => {
      if (topic === topicOf(CONTROL))
        received.push((JSON.parse(payload.toString()) as { systolic: number }).systolic);
    });
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      staff.once('connect', (ack) => resolve(ack.sessionPresent));
      staff.once('error', reject);
    });
    expect(sessionPresent).toBe(true);
    // The subscription survived in the session: a live reading arrives, and a backlog would come first.
    await device.publishAsync(topicOf(CONTROL), reading(260), { qos: 1 });
    await eventually(
      async () => received.length,
      (n) => n > 0,
    );
    await settled(() => received.length, 300);
    expect(received).toEqual([260]);
    await staff.endAsync();
    await device.endAsync();
  });
});
