// Fault tests through real processes: the gateway, influxd, MQTT.js publishers at QoS 1. Each ends
// with an exact comparison of what publishers got acknowledged against what InfluxDB holds.
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';

vi.setConfig({ testTimeout: 90_000 });

import { encodeRecord } from '../../src/storage/spool/index.js';
import { createDiskFaults } from '../helpers/disk-faults.js';
import { useLab } from '../helpers/fixture.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { metricIn, scrapeMetrics } from '../helpers/metrics.js';
import { collect, connectDevice, eventually, settled } from '../helpers/mqtt.js';
import { compareWithInflux, startFleet } from '../helpers/publishers.js';
import { startSlowProxy } from '../helpers/slow-proxy.js';

const devices = (site: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `${site}-ox-${i}`, type: 'pulse-oximeter', site }));
const report = (name: string, figures: object) => console.log(`[fault] ${name}: ${JSON.stringify(figures)}`);

const lab = useLab();

describe('an acknowledged reading is never lost', () => {
  it('when the gateway is killed with SIGKILL under load and restarted', async () => {
    const ids = devices('kill', 8);
    const db = 'fault_kill';
    const gw = await createGatewayProcess({ influxUrl: lab.influx.url, db, devices: ids });
    onTestFinished(() => gw.stop());
    await gw.start();
    const fleet = startFleet({ ids: ids.map((d) => d.id), site: 'kill', url: gw.mqttUrl, intervalMs: 5 });
    await fleet.untilAcked(1500);
    expect(await gw.kill('SIGKILL')).toBeNull();
    const ackedAtKill = fleet.acked;
    await gw.start();
    await fleet.untilAcked(ackedAtKill + 1500);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, db);
    report('SIGKILL', { ...result, ackedAtKill });
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(result.stored).toBeGreaterThanOrEqual(result.acked);
    expect(result.stored).toBeLessThanOrEqual(result.sent);
    expect(await gw.kill('SIGTERM')).toBe(0);
  });

  it('when InfluxDB answers slowly', async () => {
    const ids = devices('slow', 5);
    const proxy = await startSlowProxy(lab.influx.url, 800);
    const gw = await lab.startGateway({
      influxUrl: proxy.url,
      devices: ids,
      config: { writer: { flushInterval: '50ms' } },
    });
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'slow',
      url: () => gw.mqttUrl,
      intervalMs: 5,
      maxPerDevice: 300,
    });
    await fleet.untilAcked(1500, 60_000);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, gw.db);
    report('slow InfluxDB (800 ms per request)', { ...result, requests: proxy.requests() });
    expect(result).toMatchObject({ sent: 1500, acked: 1500, stored: 1500, lost: 0, wrongValues: 0 });
    await gw.stop();
    await proxy.stop();
  });

  it('when the last spool record is torn: the tail is cut, the rest replayed', async () => {
    const ids = devices('torn', 4);
    const db = 'fault_torn';
    const gw = await createGatewayProcess({ influxUrl: lab.influx.url, db, devices: ids });
    onTestFinished(() => gw.stop());
    await lab.influx.kill();
    await gw.start();
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'torn',
      url: gw.mqttUrl,
      intervalMs: 2,
      maxPerDevice: 100,
    });
    await fleet.untilAcked(400);
    await fleet.stop();
    expect(await gw.kill('SIGKILL')).toBeNull();
    const spoolDir = join(gw.dataDir, 'spool');
    const segments = readdirSync(spoolDir)
      .filter((n) => n.endsWith('.seg'))
      .sort();
    appendFileSync(
      join(spoolDir, segments[segments.length - 1] as string),
      encodeRecord(Buffer.from('half a record'), Date.now()).subarray(0, 20),
    );
    await lab.influx.restart();
    await gw.start();
    const result = await compareWithInflux(fleet, lab.influx, db);
    report('torn last record', result);
    expect(result).toMatchObject({ acked: 400, stored: 400, lost: 0, wrongValues: 0 });
    expect(gw.output()).toContain('spool segment ends in a torn record: cut');
    expect(readdirSync(join(spoolDir, 'corrupt'))).toHaveLength(1);
    expect(await gw.kill('SIGTERM')).toBe(0);
  });

  it('when a batch holds a field-type conflict: the bad points go to the rejects log, the rest are written', async () => {
    const gw = await lab.startGateway({ devices: devices('conflict', 1) });
    // Someone wrote perfusionIndex as a string into this database: our float points now conflict.
    const ts0 = Date.now() - 600_000;
    const seed = await fetch(`${lab.influx.url}/write?db=${gw.db}&precision=ms`, {
      method: 'POST',
      body: `pulse_oximeter,device_id=legacy perfusionIndex="n/a" ${ts0}`,
    });
    expect(seed.status).toBe(204);
    const client = await connectDevice(gw.mqttUrl, 'conflict-ox-0');
    const readings = Array.from({ length: 50 }, (_, i) => ({
      ts: new Date(ts0 + (i + 1) * 1000).toISOString(),
      spo2: 90 + (i % 10),
      pulse: 70,
      ...(i % 5 === 0 ? { perfusionIndex: 2.5 } : {}),
    }));
    await client.publishAsync(
      'lab/conflict/pulse-oximeter/conflict-ox-0/telemetry',
      JSON.stringify({ readings }),
      { qos: 1 },
    );
    const stored = await eventually(
      () =>
        lab.influx.query<{ count: number }>(
          gw.db,
          `SELECT count(spo2) FROM pulse_oximeter WHERE device_id = 'conflict-ox-0'`,
        ),
      (r) => r[0]?.count === 40,
    );
    const rejected = await eventually(
      () => gw.rejectsLog().then((l) => l.filter((e) => JSON.stringify(e.rejections).includes('"database"'))),
      (l) => l.length === 10,
    );
    report('field-type conflict', { sent: 50, stored: stored[0]?.count, rejectedByInflux: rejected.length });
    expect(String(rejected[0]?.payload)).toMatch(
      /^pulse_oximeter,device_id=conflict-ox-0,.*perfusionIndex=2\.5/,
    );
    expect(JSON.stringify(rejected[0]?.rejections)).toContain('field type conflict');
    expect(gw.app.drain.stats).toMatchObject({ pointsRejected: 10, pointsWritten: 40 });
    await client.endAsync();
    await gw.stop();
  });

  it('when the spool is full: acknowledgements pause, nothing is dropped, and they resume by themselves', async () => {
    const ids = devices('full', 4);
    const gw = await lab.startGateway({
      devices: ids,
      config: { spool: { maxSize: '16KiB' } },
    });
    await lab.influx.kill();
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'full',
      url: () => gw.mqttUrl,
      intervalMs: 2,
      ackTimeoutMs: 60_000,
    });
    await eventually(
      async () => gw.app.queue.stats.full,
      (full) => full,
      20_000,
    );
    // Records reserved just before the limit was reached are still committed and acknowledged,
    // and their PUBACKs may be on the wire; after that, nothing more may be acknowledged.
    const ackedWhenFull = await settled(() => fleet.acked, 500);
    // Not a fixed sleep: the gateway is seen at work (two more failed writes to the stopped influxd)
    // while every device still has a reading waiting for its PUBACK.
    const retriesWhenFull = gw.app.drain.stats.writeRetries;
    await eventually(
      async () => gw.app.drain.stats.writeRetries,
      (n) => n >= retriesWhenFull + 2,
      20_000,
    );
    expect(fleet.acked).toBe(ackedWhenFull);
    expect(gw.app.queue.stats.bytes).toBeLessThanOrEqual(16 * 1024);
    expect(
      gw.logLines().some((l) => l.msg === 'spool full: acknowledgements paused until InfluxDB catches up'),
    ).toBe(true);
    const ready = await fetch(`http://127.0.0.1:${gw.app.opsPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.stringify(await ready.json())).toMatch(
      /spool full .*not acknowledging.*InfluxDB at .* is not reachable/,
    );
    await lab.influx.restart();
    await fleet.untilAcked(ackedWhenFull + 500, 60_000);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, gw.db);
    report('full spool', { ...result, ackedWhenFull });
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    expect(gw.logLines().some((l) => l.msg === 'spool has room again: acknowledging')).toBe(true);
    expect((await fetch(`http://127.0.0.1:${gw.app.opsPort}/readyz`)).status).toBe(200);
    await gw.stop();
  });
});

describe('an acknowledged reading is never lost on a failing disk', () => {
  const scrape = async (port: number) => {
    const text = await scrapeMetrics(port);
    return (name: string) => metricIn(text, name) ?? Number.NaN;
  };

  it('when spool reads fail while drain workers hold batches: every acknowledged reading is stored once, both workers keep running', async () => {
    const ids = devices('readfail', 4);
    const faults = createDiskFaults();
    // Every third read of a segment fails, for a while: some while a worker holds a partial batch.
    faults.failReadsWhen((n) => n % 3 === 0 && n <= 90);
    const gw = await lab.startGateway({
      devices: ids,
      config: { spool: { segmentSize: '4KiB' }, writer: { flushInterval: '200ms', batchSize: 20 } },
      openSpoolFile: faults.openFile,
    });
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'readfail',
      url: () => gw.mqttUrl,
      intervalMs: 5,
      maxPerDevice: 150,
    });
    await fleet.untilAcked(600, 60_000);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, gw.db, 20_000);
    report('failing spool reads', {
      ...result,
      injectedReadFaults: faults.injected.reads,
      drainWorkers: gw.app.drain.stats.workers,
    });
    expect(await gw.app.drain.idle(20_000)).toBe(true);
    const metric = await scrape(gw.app.opsPort);
    expect(result).toMatchObject({ sent: 600, acked: 600, stored: 600, lost: 0, wrongValues: 0 });
    // Written exactly once: no batch was written twice or skipped.
    expect(gw.app.drain.stats.pointsWritten).toBe(gw.app.pipeline.stats.readingsAccepted);
    expect(faults.injected.reads).toBeGreaterThan(0);
    expect(metric('livinglab_drain_workers')).toBe(2);
    expect(metric('livinglab_spool_read_errors_total')).toBeGreaterThan(0);
    expect(gw.logLines().some((l) => l.msg === 'spool read failed; reading again with backoff')).toBe(true);
    await gw.stop();
  });

  it('when the disk fills up mid-write: the cut-short appends are not acknowledged, every acknowledged reading is stored once', async () => {
    const ids = devices('enospc', 4);
    const faults = createDiskFaults();
    const gw = await lab.startGateway({
      devices: ids,
      config: { spool: { segmentSize: '8KiB' } },
      openSpoolFile: faults.openFile,
    });
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'enospc',
      url: () => gw.mqttUrl,
      intervalMs: 5,
      maxPerDevice: 150,
    });
    await fleet.untilAcked(100, 60_000);
    // A few bytes of the next group commit reach the file, then the disk is full for three writes.
    faults.shortWriteThenFull(10, 3);
    await eventually(
      async () => faults.injected.writes,
      (n) => n === 3,
    );
    // Devices whose message was refused reconnect and go on; later readings land after the cut.
    await fleet.untilAcked(fleet.acked + 200, 60_000);
    await fleet.stop();
    const result = await compareWithInflux(fleet, lab.influx, gw.db, 20_000);
    report('disk full mid-write', {
      ...result,
      injectedWriteFaults: faults.injected.writes,
      drainWorkers: gw.app.drain.stats.workers,
    });
    expect(await gw.app.drain.idle(20_000)).toBe(true);
    const metric = await scrape(gw.app.opsPort);
    expect(faults.injected.writes).toBe(3);
    expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
    // Readings that got no PUBACK were not stored either (the device sends them again).
    expect(result.acked).toBeLessThan(result.sent);
    expect(result.stored).toBe(result.acked);
    expect(gw.app.drain.stats.pointsWritten).toBe(gw.app.pipeline.stats.readingsAccepted);
    expect(metric('livinglab_spool_write_errors_total')).toBeGreaterThanOrEqual(1);
    expect(metric('livinglab_spool_failed')).toBe(0);
    expect(
      gw
        .logLines()
        .some(
          (l) =>
            l.msg ===
            'spool write failed; segment cut back to its last complete record, readings not acknowledged',
        ),
    ).toBe(true);
    expect((await fetch(`http://127.0.0.1:${gw.app.opsPort}/readyz`)).status).toBe(200);
    await gw.stop();
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM flushes what InfluxDB takes, keeps the rest in the spool, exits 0, and writes it on the next start', async () => {
    const ids = devices('term', 2);
    const db = 'fault_term';
    const gw = await createGatewayProcess({
      influxUrl: lab.influx.url,
      db,
      devices: ids,
      args: ['--shutdown-timeout', '1s'],
    });
    onTestFinished(() => gw.stop());
    await gw.start();
    await lab.influx.kill();
    const fleet = startFleet({
      ids: ids.map((d) => d.id),
      site: 'term',
      url: gw.mqttUrl,
      intervalMs: 2,
      maxPerDevice: 100,
    });
    await fleet.untilAcked(200);
    await fleet.stop();
    expect(await gw.kill('SIGTERM')).toBe(0);
    expect(gw.output()).toMatch(/"recordsLeftInSpool":200/);
    await lab.influx.restart();
    await gw.start();
    const result = await compareWithInflux(fleet, lab.influx, db);
    expect(result).toMatchObject({ acked: 200, stored: 200, lost: 0 });
    expect(await gw.kill('SIGINT')).toBe(0);
  });

  it('feedback and rejections still work while InfluxDB is down', async () => {
    const gw = await lab.startGateway({ devices: devices('down', 1) });
    await lab.influx.kill();
    const client = await connectDevice(gw.mqttUrl, 'down-ox-0');
    const feedback = await collect(client, 'lab/down/pulse-oximeter/down-ox-0/rejected');
    await client.publishAsync('lab/down/pulse-oximeter/down-ox-0/telemetry', '{"spo2": 120}', { qos: 1 });
    const [msg] = await feedback.next(1);
    expect(JSON.parse(msg?.payload.toString() ?? '')).toMatchObject({
      reason: 'schema',
      errors: [
        { path: '/ts', message: 'is required' },
        { path: '/pulse', message: 'is required' },
        { path: '/spo2', message: 'must be <= 100', value: 120 },
      ],
    });
    // The rejection is on disk, and a valid reading is acknowledged (spooled) while InfluxDB is down.
    expect((await gw.rejectsLog()).map((e) => e.payload)).toEqual(['{"spo2": 120}']);
    const ts = new Date(Date.now() - 60_000).toISOString();
    await client.publishAsync(
      'lab/down/pulse-oximeter/down-ox-0/telemetry',
      JSON.stringify({ ts, spo2: 94, pulse: 70 }),
      { qos: 1 },
    );
    await lab.influx.restart();
    // ...and lands once InfluxDB is back.
    const stored = await eventually(
      () => lab.influx.query<{ spo2: number }>(gw.db, `SELECT spo2 FROM pulse_oximeter WHERE time = '${ts}'`),
      (r) => r.length === 1,
      30_000,
    );
    expect(stored[0]?.spo2).toBe(94);
    await client.endAsync();
    await gw.stop();
  });
});

describe('metrics of the write path', () => {
  it('/metrics counts points written, retries, spool bytes and the oldest unwritten reading', async () => {
    const gw = await lab.startGateway({
      devices: devices('metrics', 1),
      config: { writer: { maxRetryDelay: '200ms' } },
    });
    const scrape = async () => {
      const text = await scrapeMetrics(gw.app.opsPort);
      const value = (name: string) => metricIn(text, name) ?? Number.NaN;
      return { text, value };
    };
    await lab.influx.kill();
    const client = await connectDevice(gw.mqttUrl, 'metrics-ox-0');
    const readings = Array.from({ length: 10 }, (_, i) => ({
      ts: new Date(Date.now() - 60_000 + i).toISOString(),
      spo2: 95,
      pulse: 60,
    }));
    await client.publishAsync(
      'lab/metrics/pulse-oximeter/metrics-ox-0/telemetry',
      JSON.stringify({ readings }),
      { qos: 1 },
    );
    // A failed write and a reading at least a second old, however slow the machine is today.
    const down = await eventually(
      scrape,
      (m) =>
        m.value('livinglab_write_retries_total') > 0 &&
        m.value('livinglab_spool_oldest_unwritten_seconds') >= 1,
    );
    expect(down.value('livinglab_points_written_total')).toBe(0);
    expect(down.value('livinglab_spool_bytes')).toBeGreaterThan(0);
    expect(down.value('livinglab_spool_oldest_unwritten_seconds')).toBeGreaterThanOrEqual(1);
    expect(down.value('livinglab_write_retries_total')).toBeGreaterThan(0);
    expect(down.value('livinglab_readings_accepted_total')).toBe(10);
    await lab.influx.restart();
    expect(await gw.app.drain.idle(20_000)).toBe(true);
    const up = await scrape();
    expect(up.value('livinglab_points_written_total')).toBe(10);
    expect(up.value('livinglab_spool_bytes')).toBe(0);
    expect(up.value('livinglab_spool_oldest_unwritten_seconds')).toBe(0);
    expect(up.text).toMatch(/^livinglab_write_duration_seconds_count [1-9]/m);
    expect(up.text).toContain('process_resident_memory_bytes');
    await client.endAsync();
    await gw.stop();
  });
});
