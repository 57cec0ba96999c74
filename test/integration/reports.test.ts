// The data-quality report for a day with known gaps and rejects, and housekeeping.
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { runHousekeeping } from '../../src/jobs/housekeeping.js';
import { addDays, dayOf } from '../../src/jobs/lab-day.js';
import { buildQualityReport, type QualityReport } from '../../src/jobs/quality-report.js';
import { cliEntry } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { collect, connectDevice, eventually } from '../helpers/mqtt.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

const lab = useLab({
  devices: [
    { id: 'clim-1', type: 'room-climate', site: 'home-a', interval: '1h' },
    { id: 'door-1', type: 'door-sensor', site: 'home-b' },
  ],
});
beforeAll(async () => {
  // Yesterday, hourly at hh:30, except 05:30–09:30 (five missing: one gap of six hours).
  const client = await connectDevice(lab.gw.mqttUrl, 'clim-1');
  const feedback = await collect(client, 'lab/home-a/room-climate/clim-1/rejected');
  const hours = Array.from({ length: 24 }, (_, h) => h).filter((h) => h < 5 || h > 9);
  const readings = hours.map((h, i) => ({
    ts: `${day}T${String(h).padStart(2, '0')}:30:00Z`,
    temperature: 21,
    humidity: 40,
    battery: 90 - i,
  }));
  await client.publishAsync('lab/home-a/room-climate/clim-1/telemetry', JSON.stringify({ readings }), {
    qos: 1,
  });
  // Two out-of-range readings and one from a clock far ahead: three rejects, one of them "time".
  await client.publishAsync(
    'lab/home-a/room-climate/clim-1/telemetry',
    JSON.stringify({ ts: `${day}T12:00:00Z`, temperature: 99, humidity: 40 }),
    { qos: 1 },
  );
  await client.publishAsync(
    'lab/home-a/room-climate/clim-1/telemetry',
    JSON.stringify({ ts: `${day}T13:00:00Z`, temperature: 21, humidity: 140 }),
    { qos: 1 },
  );
  await client.publishAsync(
    'lab/home-a/room-climate/clim-1/telemetry',
    JSON.stringify({ ts: new Date(Date.now() + 3_600_000).toISOString(), temperature: 21, humidity: 40 }),
    { qos: 1 },
  );
  await feedback.next(3);
  await client.endAsync();
  await lab.gw.app.drain.idle(10_000);
});

/** The quality report of `date` over the lab's gateway and InfluxDB, as the nightly job builds it. */
const reportOn = (date: string) =>
  buildQualityReport({
    date,
    devices: lab.gw.app.registry.current().devices.values(),
    schemas: lab.gw.app.schemas,
    influxUrl: lab.influx.url,
    db: lab.gw.db,
    dataDir: join(lab.gw.dir, 'data'),
  });

/** `livinglab report` over the lab; resolves its output, or its exit code and stderr when it failed. */
async function runReportCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        ...cliEntry(),
        'report',
        '--registry',
        lab.gw.registryFile,
        '--influx-url',
        lab.influx.url,
        '--influx-db',
        lab.gw.db,
        '--data-dir',
        join(lab.gw.dir, 'data'),
        ...args,
      ],
      { cwd: ROOT, env: { ...process.env, LIVINGLAB_TIMEZONE: 'UTC' } },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('data-quality report', () => {
  it('gives the known completeness, gap, rejects, clock skew and battery trend', async () => {
    const report = await reportOn(day);
    // The rejection with a clock far ahead happened today, so yesterday's report does not count it.
    expect(report.devices.find((d) => d.deviceId === 'clim-1')).toEqual({
      deviceId: 'clim-1',
      site: 'home-a',
      type: 'room-climate',
      interval: '1h',
      expected: 24,
      received: 19,
      completeness: 0.792,
      gaps: [{ from: `${day}T04:30:00.000Z`, to: `${day}T10:30:00.000Z`, minutes: 360 }],
      rejects: {},
      clockSkewRejects: 0,
      battery: { first: 90, last: 72 },
    });
    // The day the three rejections were received counts them: two out of range, one clock skew.
    const received = (await lab.gw.rejectsLog()).filter((e) => e.clientId === 'clim-1');
    expect(received).toHaveLength(3);
    const rejectDay = String(received[0]?.receivedAt ?? '').slice(0, 10);
    expect(received.every((e) => (e.receivedAt as string).slice(0, 10) === rejectDay)).toBe(true);
    expect((await reportOn(rejectDay)).devices.find((d) => d.deviceId === 'clim-1')).toMatchObject({
      rejects: { schema: 2, time: 1 },
      clockSkewRejects: 1,
    });
    expect(report.devices.find((d) => d.deviceId === 'door-1')).toMatchObject({
      expected: null,
      completeness: null,
      received: 0,
      gaps: [],
    });
  });

  it('livinglab report writes Markdown, JSON and a completeness chart per site', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        ...cliEntry(),
        'report',
        '--date',
        day,
        '--registry',
        lab.gw.registryFile,
        '--influx-url',
        lab.influx.url,
        '--influx-db',
        lab.gw.db,
        '--data-dir',
        join(lab.gw.dir, 'data'),
      ],
      { cwd: ROOT },
    );
    const files = stdout.trim().split('\n');
    expect(files.map((f) => f.split('/').pop())).toEqual([
      `${day}.json`,
      `${day}.md`,
      `${day}-completeness.svg`,
    ]);
    const json = JSON.parse(readFileSync(files[0] as string, 'utf8')) as QualityReport;
    expect(json.devices.find((d) => d.deviceId === 'clim-1')?.received).toBe(19);
    expect(readFileSync(files[1] as string, 'utf8')).toMatch(
      /\| clim-1 \| home-a \| room-climate \| 24 \| 19 \| 79\.2 % \| 04:30–10:30 \(360 min\) \|/,
    );
    const svg = readFileSync(files[2] as string, 'utf8');
    expect(svg).toMatch(/^<svg xmlns/);
    expect(svg).toContain('>home-a</text>');
    expect(svg).toContain('>79 %</text>');
  });

  it('skips a torn line in a rotated rejects log with a warning and a count, and still reports', async () => {
    const dataDir = join(lab.gw.dir, 'data');
    const rejectDay = new Date().toISOString().slice(0, 10);
    const torn = join(dataDir, 'rejects-2026-01-01T00-00-00-000Z.ndjson');
    // A whole line of that day, then one cut short by a crash (no closing brace, no newline).
    const whole = JSON.stringify({
      receivedAt: `${rejectDay}T00:00:01.000Z`,
      clientId: 'clim-1',
      topic: 'lab/home-a/room-climate/clim-1/telemetry',
      rejections: [{ reason: 'json', errors: [] }],
      payload: 'x',
      payloadEncoding: 'utf8',
    });
    writeFileSync(torn, `${whole}\n{"receivedAt":"${rejectDay}T00:00:02.000Z","clientId":"clim-`);
    onTestFinished(() => rmSync(torn, { force: true }));
    const report = await reportOn(rejectDay);
    expect(report.unreadableRejectLines).toBe(1);
    expect(report.devices.find((d) => d.deviceId === 'clim-1')).toMatchObject({
      rejects: { schema: 2, time: 1, json: 1 },
    });
    const cli = await runReportCli(['--date', rejectDay]);
    expect(cli).toMatchObject({ code: 0 });
    expect(cli.stderr).toContain(`warning: ${torn}:2: not a rejects log entry (torn or edited); skipped`);
    expect(cli.stderr).not.toMatch(/InfluxDB/);
    expect(readFileSync(join(dataDir, 'reports', `${rejectDay}.md`), 'utf8')).toContain(
      '1 unreadable line(s) in the rejects logs were skipped',
    );
  });

  it('refuses a date in the future and a date that is not on the calendar, saying why', async () => {
    const future = await runReportCli(['--date', '2099-01-01']);
    expect(future.code).not.toBe(0);
    expect(future.stderr).toMatch(
      /--date: 2099-01-01 is in the future \(today is \d{4}-\d\d-\d\d in the lab's time zone\)/,
    );
    const impossible = await runReportCli(['--date', '2026-02-30']);
    expect(impossible.code).not.toBe(0);
    expect(impossible.stderr).toContain('--date: "2026-02-30" is not a calendar date like 2026-11-21');
    expect(readdirSync(join(lab.gw.dir, 'data', 'reports'))).not.toContain('2099-01-01.md');
  });

  it('counts rejects by reason and clock-skew rejections on their day', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const report = await reportOn(today);
    expect(report.devices.find((d) => d.deviceId === 'clim-1')).toMatchObject({
      rejects: { schema: 2, time: 1 },
      clockSkewRejects: 1,
    });
  });
});

describe('housekeeping', () => {
  it('rotates the rejects log (appends go on in a new file) and deletes what is past retention', async () => {
    const dataDir = join(lab.gw.dir, 'data');
    const old = join(dataDir, 'rejects-2020-01-01T00-00-00-000Z.ndjson');
    writeFileSync(old, '{}\n');
    mkdirSync(join(dataDir, 'reports'), { recursive: true });
    const oldReport = join(dataDir, 'reports', '2020-01-01.md');
    writeFileSync(oldReport, '# old\n');
    // Operators' own files, old by their mtime and with dates in their names: never deleted.
    const notes = join(dataDir, 'reports', '2020-01-01-notes.md');
    const saved = join(dataDir, 'events-2020-01-01T00-00-00-000Z.ndjson.bak');
    writeFileSync(notes, '# what happened that day\n');
    writeFileSync(saved, '{}\n');
    const longAgo = new Date('2020-01-02T00:00:00Z');
    for (const f of [old, oldReport, notes, saved]) utimesSync(f, longAgo, longAgo);
    const before = readFileSync(join(dataDir, 'rejects.ndjson'), 'utf8');
    const result = await runHousekeeping({
      dataDir,
      rejects: lab.gw.app.rejects,
      retentionMs: 90 * 86_400_000,
      log: lab.gw.app.log,
    });
    expect(result.rotated).toHaveLength(1); // no liveness events yet, so only the rejects log
    expect(readFileSync(result.rotated[0] as string, 'utf8')).toBe(before);
    expect(result.deleted.sort()).toEqual([old, oldReport].sort());
    expect(readdirSync(join(dataDir, 'reports'))).toContain(`${day}.md`);
    expect(readFileSync(notes, 'utf8')).toBe('# what happened that day\n');
    expect(readFileSync(saved, 'utf8')).toBe('{}\n');
    // The gateway keeps logging rejects into a fresh file.
    const client = await connectDevice(lab.gw.mqttUrl, 'clim-1');
    await client.publishAsync('lab/home-a/room-climate/clim-1/telemetry', '{"x":', { qos: 1 });
    await client.endAsync();
    expect(readFileSync(join(dataDir, 'rejects.ndjson'), 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('keeps acknowledging, logging and answering invalid messages after the rejects log was removed by hand and rotated', async () => {
    const dataDir = join(lab.gw.dir, 'data');
    const client = await connectDevice(lab.gw.mqttUrl, 'clim-1');
    let closed = false;
    client.on('close', () => {
      closed = true;
    });
    const feedback = await collect(client, 'lab/home-a/room-climate/clim-1/rejected');
    await client.publishAsync('lab/home-a/room-climate/clim-1/telemetry', '{"first":', { qos: 1 });
    await feedback.next(1);
    rmSync(join(dataDir, 'rejects.ndjson'));
    // The nightly run after the removal: nothing to rotate, and no step fails.
    const result = await runHousekeeping({
      dataDir,
      rejects: lab.gw.app.rejects,
      retentionMs: 90 * 86_400_000,
      log: lab.gw.app.log,
    });
    expect(result.rotated).toEqual([]);
    // PUBACK, feedback and a line in a rejects log that exists: the device is not disconnected.
    await client.publishAsync('lab/home-a/room-climate/clim-1/telemetry', '{"second":', { qos: 1 });
    const [, second] = await feedback.next(2);
    expect(JSON.parse(String(second?.payload))).toMatchObject({ reason: 'json' });
    expect((await lab.gw.rejectsLog()).map((e) => e.payload)).toEqual(['{"second":']);
    expect(closed).toBe(false);
    expect(client.connected).toBe(true);
    // And the next run rotates that file as usual.
    const next = await runHousekeeping({
      dataDir,
      rejects: lab.gw.app.rejects,
      retentionMs: 90 * 86_400_000,
      log: lab.gw.app.log,
    });
    expect(next.rotated).toHaveLength(1);
    expect(readFileSync(next.rotated[0] as string, 'utf8')).toContain('{\\"second\\":');
    await client.endAsync();
  });
});

describe('missed daily runs', () => {
  it("writes the report a restart missed at once, for the lab's yesterday in its time zone", async () => {
    // A zone whose date differs from UTC's right now, so a report of UTC's yesterday would be wrong.
    const timeZone = new Date().getUTCHours() >= 12 ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago';
    const labYesterday = addDays(dayOf(Date.now(), timeZone), -1);
    expect(labYesterday).not.toBe(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
    const dataDir = mkdtempSync(join(tmpdir(), 'll-catch-up-'));
    onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
    // The gateway last ran its daily jobs three days ago, then was off past their times.
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
    writeFileSync(
      join(dataDir, 'jobs.json'),
      JSON.stringify({
        'quality-report': { lastRunAt: threeDaysAgo },
        housekeeping: { lastRunAt: threeDaysAgo },
      }),
    );
    writeFileSync(join(dataDir, 'events.ndjson'), '{"event":"device-offline"}\n');
    await lab.startGateway({
      devices: [{ id: 'clim-9', type: 'room-climate', site: 'home-a', interval: '1h' }],
      config: { dataDir, timezone: timeZone },
    });
    const report = join(dataDir, 'reports', `${labYesterday}.json`);
    await eventually(async () => existsSync(report), Boolean, 20_000);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({
      date: labYesterday,
      timeZone,
      devices: [{ deviceId: 'clim-9', expected: 24, received: 0 }],
    });
    // Housekeeping too: the events log was rotated, and both runs are recorded for the next start.
    await eventually(
      async () => readdirSync(dataDir).filter((n) => n.startsWith('events-')).length,
      (n) => n === 1,
      20_000,
    );
    const state = await eventually(
      async () =>
        JSON.parse(readFileSync(join(dataDir, 'jobs.json'), 'utf8')) as Record<string, { lastRunAt: string }>,
      (st) => st.housekeeping?.lastRunAt !== threeDaysAgo && st['quality-report']?.lastRunAt !== threeDaysAgo,
    );
    expect(Date.parse(state['quality-report']?.lastRunAt ?? '')).toBeGreaterThan(Date.now() - 86_400_000);
  });
});
