// A device that stops publishing is reported offline after 3 of its intervals, and online again
// when it reports: retained status, event log, metric and webhook.

import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cliEntry } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { issueStaff } from '../helpers/http-auth.js';
import { readMetric } from '../helpers/metrics.js';
import { collect, connectDevice, eventually } from '../helpers/mqtt.js';

const hooks: Record<string, unknown>[] = [];
const hookServer = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => {
    body += c.toString();
  });
  req.on('end', () => {
    hooks.push(JSON.parse(body) as Record<string, unknown>);
    res.writeHead(204).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
});
// Declared before the lab so that it runs after the gateway has stopped (after-hooks run in reverse).
afterAll(async () => {
  hookServer.close();
});
const lab = useLab(() => ({
  devices: [{ id: 'quiet-1', type: 'room-climate', site: 'live', interval: '1s' }],
  staff: ['staff-live'],
  config: {
    jobs: {
      liveness: {
        schedule: '* * * * * *',
        webhook: `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`,
      },
    },
  },
}));

const reading = () => JSON.stringify({ ts: new Date().toISOString(), temperature: 21.5, humidity: 40 });
const metric = async (name: string) => (await readMetric(lab.gw.app.opsPort, name)) ?? Number.NaN;

it('marks a device silent for 3 intervals offline, and online again when it reports', {
  timeout: 30_000,
}, async () => {
  const staff = await connectDevice(lab.gw.mqttUrl, 'staff-live', { clientId: 'staff-live:1' });
  const status = await collect(staff, 'lab/live/room-climate/quiet-1/status');
  const device = await connectDevice(lab.gw.mqttUrl, 'quiet-1');
  await device.publishAsync('lab/live/room-climate/quiet-1/telemetry', reading(), { qos: 1 });
  const t0 = Date.now();
  // The device stays connected but says nothing: offline after > 3 s, found by the next check.
  await eventually(
    async () => lab.gw.app.liveness.silent.has('quiet-1'),
    (v) => v,
    10_000,
  );
  expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
  await eventually(
    async () => status.messages.map((m) => m.payload.toString()),
    (s) => s[s.length - 1] === 'offline',
  );
  expect(await metric('livinglab_devices_silent')).toBe(1);

  await device.publishAsync('lab/live/room-climate/quiet-1/telemetry', reading(), { qos: 1 });
  await eventually(
    async () => status.messages.map((m) => m.payload.toString()),
    (s) => s[s.length - 1] === 'online',
  );
  expect(lab.gw.app.liveness.silent.size).toBe(0);
  expect(await metric('livinglab_devices_silent')).toBe(0);
  expect(await metric('livinglab_liveness_transitions_total{state="offline"}')).toBe(1);

  const events = (await readFile(join(lab.gw.dir, 'data', 'events.ndjson'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(events.map((e) => e.event)).toEqual(['device-offline', 'device-online']);
  expect(events[0]).toMatchObject({ deviceId: 'quiet-1', site: 'live', deviceType: 'room-climate' });
  expect(events[0]?.silentSeconds).toBeGreaterThanOrEqual(3);
  await eventually(
    async () => hooks.map((h) => h.event),
    (e) => e.length === 2,
  );
  expect(hooks.map((h) => [h.event, h.deviceId])).toEqual([
    ['device-offline', 'quiet-1'],
    ['device-online', 'quiet-1'],
  ]);
  expect(await metric('livinglab_job_runs_total{job="liveness"}')).toBeGreaterThanOrEqual(3);
  expect([...lab.gw.app.scheduler.stats.keys()]).toEqual(['liveness', 'quality-report', 'housekeeping']);
  expect(await metric('livinglab_connected_devices{device_type="room-climate",site="live"}')).toBe(1);
  await device.endAsync();
  await staff.endAsync();
});

it('livinglab status shows connected and silent devices, spool, last write and recent rejects', {
  timeout: 30_000,
}, async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const device = await connectDevice(lab.gw.mqttUrl, 'quiet-1');
  await device.publishAsync('lab/live/room-climate/quiet-1/telemetry', reading(), { qos: 1 });
  await device.publishAsync('lab/live/room-climate/quiet-1/telemetry', '{"bad":', { qos: 1 });
  await lab.gw.app.drain.idle(5000);
  const token = await issueStaff(lab.gw, 'liveness-test');
  const res = await fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/status`, {
    headers: { 'x-request-id': 'req-42', authorization: `Bearer ${token}` },
  });
  expect(res.headers.get('x-request-id')).toBe('req-42');
  const status = (await res.json()) as { spool: { limitBytes: number; full: boolean } };
  expect(status.spool.limitBytes).toBeGreaterThan(0);
  expect(status.spool.full).toBe(false);
  expect(lab.gw.logLines().some((l) => l.reqId === 'req-42')).toBe(true);
  const root = new URL('../../', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...cliEntry(), 'status', '--url', `http://127.0.0.1:${lab.gw.app.httpPort}`],
    { cwd: root, env: { ...process.env, LIVINGLAB_TOKEN: token } },
  );
  expect(stdout).toMatch(/^devices connected\s+1 of 1 enabled$/m);
  // quiet-1 reports every second, so on a loaded machine it may have gone silent by the time the
  // command has started: the summary must agree with the table of silent devices, whichever it is.
  const silentRows = stdout
    .split('\n')
    .filter((l) => /^quiet-1\s+room-climate\s+live\s+yes\s+yes\s+\d{4}-/.test(l));
  expect(stdout).toMatch(new RegExp(`^devices silent\\s+${silentRows.length}$`, 'm'));
  // Everything was written (drain idle): the spool line gives its size of the configured limit.
  const limit = `${(status.spool.limitBytes / 1024 / 1024).toFixed(1)} MiB`;
  expect(stdout).toMatch(new RegExp(`^spool\\s+\\d+\\.\\d MiB of ${limit.replace('.', '\\.')}$`, 'm'));
  expect(stdout).toMatch(/^oldest unwritten\s+0 s \(0 messages\)$/m);
  expect(stdout).toMatch(/^last write to InfluxDB\s+\d{4}-\d\d-\d\dT/m);
  expect(stdout).toMatch(/^rejects in the last hour\s+1$/m);
  expect(lab.gw.logLines().some((l) => l.msg === 'message rejected' && l.deviceId === 'quiet-1')).toBe(true);
  await device.endAsync();
});

it('reports a low battery once (event log, metric, webhook), not at every reading', {
  timeout: 20_000,
}, async () => {
  const device = await connectDevice(lab.gw.mqttUrl, 'quiet-1');
  const from = hooks.length;
  for (const battery of [40, 12, 11]) {
    await device.publishAsync(
      'lab/live/room-climate/quiet-1/telemetry',
      JSON.stringify({ ts: new Date().toISOString(), temperature: 21, humidity: 40, battery }),
      { qos: 1 },
    );
  }
  await eventually(
    async () => hooks.filter((h) => h.event === 'battery-low'),
    (l) => l.length === 1,
  );
  // Marker: the device now falls silent, and its offline event, emitted seconds after the readings,
  // reaches the webhook; a second battery-low would have been posted before it.
  await eventually(
    async () => hooks.slice(from).some((h) => h.event === 'device-offline' && h.deviceId === 'quiet-1'),
    (v) => v,
    15_000,
  );
  expect(hooks.filter((h) => h.event === 'battery-low')).toEqual([
    expect.objectContaining({ deviceId: 'quiet-1', battery: 12 }),
  ]);
  expect(await metric('livinglab_devices_battery_low')).toBe(1);
  const events = (await readFile(join(lab.gw.dir, 'data', 'events.ndjson'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string });
  expect(events.filter((e) => e.event === 'battery-low')).toHaveLength(1);
  await device.endAsync();
});
