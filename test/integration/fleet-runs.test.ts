// Recurring fleets inside `livinglab serve --fleet`, and record → replay into a second gateway.
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { credentialsFileFor } from '../../simulators/provision.js';
import { recordMessages } from '../../simulators/recording.js';
import { simulate } from '../../src/cli/simulate.js';
import { secretsFileFor } from '../../src/registry/secrets-file.js';
import { cliEntry, runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';

const ROOT = new URL('../../', import.meta.url).pathname;

const lab = useLab();

/** Every point of every measurement in `db`, by measurement. */
async function stored(db: string): Promise<Record<string, unknown[]>> {
  const names = await lab.influx.query<{ name: string }>(db, 'SHOW MEASUREMENTS');
  const all: Record<string, unknown[]> = {};
  for (const { name } of names) all[name] = await lab.influx.query(db, `SELECT * FROM "${name}"`);
  return all;
}

const tinyFleet = (extra = '') => `name: tiny
seed: 3
start: now-30m
duration: 30m
speed: 1800
${extra}
sites:
  - id: tiny-01
    residents:
      - id: p-tiny-01
        devices:
          - { type: room-climate, room: kitchen, interval: 1m }
          - { type: pulse-oximeter, interval: 1m }
`;

/**
 * Runs the tiny fleet against `gw` while a staff account records lab/# to a file; resolves when
 * every acknowledged message is in the recording.
 */
async function recordTinyFleet(gw: Awaited<ReturnType<typeof lab.startGateway>>) {
  const dir = mkdtempSync(join(tmpdir(), 'll-rec-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const fleetFile = join(dir, 'tiny.yaml');
  writeFileSync(fleetFile, tinyFleet());
  const file = join(dir, 'rec.ndjson');
  const stop = new AbortController();
  const out = createWriteStream(file);
  let recordedSoFar = 0;
  let subscribed: () => void = () => undefined;
  const ready = new Promise<void>((r) => {
    subscribed = r;
  });
  const recorder = recordMessages({
    mqttUrl: gw.mqttUrl,
    username: 'staff-rec',
    password: PASSWORD,
    filter: 'lab/#',
    out,
    signal: stop.signal,
    onMessage: (n) => {
      recordedSoFar = n;
    },
    onSubscribed: () => subscribed(),
  });
  await ready;
  const run = await simulate(
    {
      fleet: fleetFile,
      mqttUrl: gw.mqttUrl,
      registry: gw.registryFile,
      influxUrl: lab.influx.url,
      influxDb: gw.db,
      dataDir: join(gw.dir, 'data'),
    },
    {},
    undefined,
  );
  // Forwarding to the recorder may trail the last PUBACK to the simulator.
  await eventually(
    async () => recordedSoFar,
    (n) => n >= run.counters.messagesAcked,
  );
  stop.abort();
  const recorded = await recorder;
  await new Promise<void>((r) => out.end(() => r()));
  expect(recorded).toBe(run.counters.messagesAcked);
  return { file, recorded, readingsAcked: run.counters.readingsAcked };
}

/** A gateway process (not yet started) serving `--fleet` from the tiny fleet with `extra` lines, into `db`. */
async function fleetGateway(file: string, extra: string, db: string) {
  const dir = mkdtempSync(join(tmpdir(), 'll-cron-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const fleetFile = join(dir, file);
  writeFileSync(fleetFile, tinyFleet(extra));
  const gw = await createGatewayProcess({
    influxUrl: lab.influx.url,
    db,
    devices: [],
    args: ['--fleet', fleetFile],
  });
  onTestFinished(() => gw.stop());
  return gw;
}

describe('serve --fleet', () => {
  it('runs a fleet on its cron schedule inside the gateway process, again and again', {
    timeout: 60_000,
  }, async () => {
    const gw = await fleetGateway('tiny.yaml', 'schedule: "*/4 * * * * *"', 'cron');
    await gw.start();
    await eventually(
      async () => (gw.output().match(/simulated fleet run finished/g) ?? []).length,
      (n) => n >= 2,
      40_000,
    );
    expect(gw.output()).toContain('"schedule":"*/4 * * * * *","msg":"simulated fleet scheduled"');
    const rows = await lab.influx.query<{ count: number }>(
      'cron',
      `SELECT count(temperature) FROM room_climate WHERE device_id = 'tiny-01-room-climate'`,
    );
    // Each run covers the 30 minutes before it started: two runs store more than one run's 30 readings.
    expect(rows[0]?.count).toBeGreaterThan(30);
    expect(await gw.kill('SIGTERM')).toBe(0);
  });

  it('refuses a fleet with a bad schedule before serving', async () => {
    const gw = await fleetGateway('bad.yaml', 'schedule: "every tuesday"', 'cron_bad');
    await expect(gw.start()).rejects.toThrow(/schedule "every tuesday" is not a cron expression/);
  });
});

describe('record and replay', () => {
  it('livinglab record says when it is subscribed, records until Ctrl-C and counts what it wrote', {
    timeout: 30_000,
  }, async () => {
    const gw = await lab.startGateway({
      devices: [{ id: 'rec-ox-0', type: 'pulse-oximeter', site: 'rec' }],
      staff: ['staff-cli'],
    });
    const recDir = mkdtempSync(join(tmpdir(), 'll-rec-cli-'));
    onTestFinished(() => rmSync(recDir, { recursive: true, force: true }));
    const file = join(recDir, 'rec.ndjson');
    const rec = spawn(
      process.execPath,
      [...cliEntry(), 'record', '--out', file, '--username', 'staff-cli', '--mqtt-url', gw.mqttUrl],
      { cwd: ROOT, stdio: ['pipe', 'ignore', 'pipe'] },
    );
    // Whether the test passes or fails, `record` does not outlive it.
    onTestFinished(() => {
      if (rec.exitCode === null && rec.signalCode === null) rec.kill('SIGKILL');
    });
    rec.stdin.end(`${PASSWORD}\n`);
    let stderr = '';
    rec.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<number | null>((r) => rec.on('exit', (code) => r(code)));
    await eventually(
      async () => stderr,
      (t) => t.includes(`recording lab/# from ${gw.mqttUrl} to ${file}; Ctrl-C to stop`),
      15_000,
    );
    const device = await connectDevice(gw.mqttUrl, 'rec-ox-0');
    const body = JSON.stringify({ ts: new Date().toISOString(), spo2: 97, pulse: 64 });
    await device.publishAsync('lab/rec/pulse-oximeter/rec-ox-0/telemetry', body, { qos: 1 });
    await eventually(
      async () => (existsSync(file) ? readFileSync(file, 'utf8') : ''),
      (t) => t.includes('rec-ox-0'),
    );
    rec.kill('SIGINT');
    expect(await done).toBe(0);
    expect(stderr).toContain(`1 message recorded to ${file}`);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      topic: 'lab/rec/pulse-oximeter/rec-ox-0/telemetry',
      payload: body,
    });
    await device.endAsync();
    await gw.stop();
  });

  it('a recording replayed with `livinglab replay` into a second gateway lands the same readings', {
    timeout: 90_000,
  }, async () => {
    const a = await lab.startGateway({ devices: [], staff: ['staff-rec'] });
    const { file, recorded, readingsAcked } = await recordTinyFleet(a);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(recorded);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      topic: expect.stringMatching(/^lab\/tiny-01\//),
      time: expect.any(String),
      payload: expect.stringContaining('"ts"'),
    });
    // A message of a device the replaying side has no credentials for is skipped and counted.
    appendFileSync(
      file,
      `${JSON.stringify({ topic: 'lab/x/room-climate/stranger/telemetry', time: new Date().toISOString(), payload: '{}' })}\n`,
    );

    // Gateway B knows the same devices (same registry and simulator credentials).
    const b = await lab.startGateway({ devices: [] });
    // The secrets file first, as the registry writes them: B never reads a device without its hash.
    copyFileSync(secretsFileFor(a.registryFile), secretsFileFor(b.registryFile));
    copyFileSync(a.registryFile, b.registryFile);
    copyFileSync(credentialsFileFor(a.registryFile), credentialsFileFor(b.registryFile));
    await eventually(
      async () => b.app.registry.current().devices.size,
      (n) => n === 2,
    );
    const replay = await runCli([
      'replay',
      file,
      '--speed',
      '20',
      '--mqtt-url',
      b.mqttUrl,
      '--registry',
      b.registryFile,
    ]);
    expect(replay.stderr).toContain(
      `${recorded} messages replayed, ${recorded} acknowledged, 1 skipped (no simulator credentials for their device)`,
    );
    expect(replay.code).toBe(0);
    expect(await a.app.drain.idle(10_000)).toBe(true);
    expect(await b.app.drain.idle(10_000)).toBe(true);
    // Every point of every measurement, fields, tags and timestamps, is the same on B as on A.
    const onA = await stored(a.db);
    expect(Object.values(onA).flat().length).toBe(readingsAcked);
    expect(await stored(b.db)).toEqual(onA);
  });

  it('livinglab replay refuses a speed that is not a positive number', async () => {
    const r = await runCli(['replay', 'nowhere.ndjson', '--speed', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--speed must be a positive number, not "0"');
  });
});
