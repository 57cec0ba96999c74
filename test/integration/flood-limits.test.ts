// One packet, or one client, must not flood the logs, the disk or the broker (issue 13 #1, #11):
// refused subscriptions are logged once per SUBSCRIBE, each device has a daily rejects-log budget,
// and a subscriber that stops reading gets its deliveries dropped (and counted), not queued.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { readMetric } from '../helpers/metrics.js';
import { collect, connectDevice, eventually } from '../helpers/mqtt.js';
import { connectNonReader } from '../helpers/non-reader.js';

vi.setConfig({ testTimeout: 120_000 });

const OX = { id: 'ox-0001', type: 'pulse-oximeter', site: 'odense' };
const OX2 = { id: 'ox-0002', type: 'pulse-oximeter', site: 'odense' };
const OX3 = { id: 'ox-0003', type: 'pulse-oximeter', site: 'odense' };
const BUDGET = 256 * 1024;

const lab = useLab({
  devices: [OX, OX2, OX3],
  staff: ['staff-1'],
  config: { rejects: { maxPerDevicePerDay: '256KiB' } },
});

async function metric(name: string, labels = ''): Promise<number> {
  return (await readMetric(lab.gw.app.opsPort, `${name}${labels}`)) ?? 0;
}

const telemetry = (d: { id: string }) => `lab/odense/pulse-oximeter/${d.id}/telemetry`;

describe('refused subscriptions', () => {
  it('one SUBSCRIBE with 20,000 refused filters writes one log line with the count', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX.id);
    const filters = Array.from({ length: 20_000 }, (_, i) => `x/${i}`);
    const granted = await client.subscribeAsync(filters, { qos: 0 }).then(
      (g) => g.map((x) => x.qos),
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted ?? [],
    );
    expect(granted).toHaveLength(20_000);
    expect(granted.every((q) => q === 128)).toBe(true);
    const lines = await eventually(
      async () => lab.gw.logLines().filter((l) => l.msg === 'subscription refused' && l.clientId === OX.id),
      (l) => l.length > 0,
    );
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        topic: 'x/0',
        refused: 20_000,
        reason: expect.stringContaining('may subscribe only to'),
      }),
    ]);
    await client.endAsync();
  });
});

describe('the rejects log', () => {
  it('stores a 1,000-reading invalid batch in a line about the size of its payload', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX2.id);
    // Readings that each break three rules, as in the review (122 KB of payload, 1.62 MB of log).
    const payload = JSON.stringify({
      readings: Array.from({ length: 1000 }, (_, i) => ({
        ts: new Date(Date.now() - i * 1000).toISOString(),
        spo2: 150 + (i % 50),
        pulse: 'fast',
      })),
    });
    await client.publishAsync(telemetry(OX2), payload, { qos: 1 });
    const [line] = (await lab.gw.rejectsLog()).filter((l) => l.clientId === OX2.id);
    expect(line).toMatchObject({ rejectionCount: 1000, reasons: { schema: 1000 }, payload });
    expect(line?.rejections).toHaveLength(20);
    // The payload (JSON-escaped) and a few KB of rejections; it was 13 times the payload.
    expect(JSON.stringify(line).length).toBeLessThan(JSON.stringify(payload).length + 8192);
    await client.endAsync();
  });

  it('after a device spends its daily budget, counts its rejections instead of storing them, and says so once', async () => {
    const client = await connectDevice(lab.gw.mqttUrl, OX3.id);
    const file = join(lab.gw.dir, 'data', 'rejects.ndjson');
    const sizeBefore = (await stat(file)).size;
    const notLoggedBefore = await metric('livinglab_rejects_not_logged_total');
    const payload = JSON.stringify({ readings: Array.from({ length: 1000 }, () => ({ spo2: 101 })) });
    // ~17 KB a line: 30 messages are twice the budget.
    for (let i = 0; i < 30; i++) await client.publishAsync(telemetry(OX3), payload, { qos: 1 });
    const lines = (await lab.gw.rejectsLog()).filter((l) => l.clientId === OX3.id);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThan(30);
    expect((await stat(file)).size - sizeBefore).toBeLessThanOrEqual(BUDGET);
    expect((await metric('livinglab_rejects_not_logged_total')) - notLoggedBefore).toBe(30 - lines.length);
    // Every rejection is still counted by reason.
    expect(await metric('livinglab_readings_rejected_total', '{reason="schema"}')).toBeGreaterThanOrEqual(
      30_000,
    );
    const warnings = lab.gw
      .logLines()
      .filter((l) => l.clientId === OX3.id && String(l.msg).startsWith('rejects log budget'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, limitBytes: BUDGET });
    await client.endAsync();
  });
});

describe('a subscriber that stops reading', () => {
  it('a staff subscriber of lab/# that never reads has deliveries dropped, and devices keep their PUBACKs', async () => {
    const staff = await connectNonReader(lab.gw.mqttUrl, {
      clientId: 'staff-1',
      username: 'staff-1',
      filter: 'lab/#',
    });
    const device = await connectDevice(lab.gw.mqttUrl, OX.id);
    const base = Date.now() - 3_600_000;
    let sent = 0;
    // Valid batches of 1,000 readings (~60 KB each), forwarded to staff, until its connection is
    // backed up and deliveries are dropped; without the guard the broker stalls and PUBACKs stop.
    while ((await metric('livinglab_deliveries_dropped_total')) === 0 && sent < 200) {
      const readings = Array.from({ length: 1000 }, (_, i) => ({
        ts: new Date(base + (sent * 1000 + i) * 3).toISOString(),
        spo2: 95,
        pulse: 60 + (i % 40),
        probe: 'ear',
      }));
      await device.publishAsync(telemetry(OX), JSON.stringify({ readings }), { qos: 1 });
      sent++;
    }
    expect(await metric('livinglab_deliveries_dropped_total')).toBeGreaterThan(0);
    // The broker still delivers to others while staff is backed up: without the guard, deliveries
    // waiting for staff's socket to drain held all of mqemitter's slots and this feedback never came.
    const other = await connectDevice(lab.gw.mqttUrl, OX2.id);
    const feedback = await collect(other, `lab/odense/pulse-oximeter/${OX2.id}/rejected`);
    await other.publishAsync(
      telemetry(OX2),
      JSON.stringify({ ts: new Date().toISOString(), spo2: 104, pulse: 70 }),
      { qos: 1 },
    );
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '{}')).toMatchObject({ reason: 'schema', readingIndex: 0 });
    await other.endAsync();
    // And devices keep being acknowledged and stored.
    for (let i = 0; i < 10; i++)
      await device.publishAsync(
        telemetry(OX),
        JSON.stringify({ ts: new Date(base - i * 1000).toISOString(), spo2: 94, pulse: 61 }),
        { qos: 1 },
      );
    await eventually(
      () =>
        lab.influx.query<{ count: number }>(
          lab.gw.db,
          `SELECT count(spo2) FROM pulse_oximeter WHERE device_id = '${OX.id}'`,
        ),
      (r) => r[0]?.count === sent * 1000 + 10,
      60_000,
    );
    staff.destroy();
    await device.endAsync();
  });
});
