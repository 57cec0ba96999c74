// Real or simulated (issue 18) through the real gateway, a real influxd and real MQTT clients:
// `simulate` registers its devices as simulated, every point carries the provenance tag, a change in
// the registry tags the next readings, and the devices a simulator registered in an older registry
// are marked, by `livinglab registry migrate` and by the gateway's start.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { simulate } from '../../src/cli/simulate.js';
import { createLogger } from '../../src/log.js';
import { addDevice, setDeviceProvenance } from '../../src/registry/edit.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { createRegistry } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { issueStaff } from '../helpers/http-auth.js';
import { readMetric } from '../helpers/metrics.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';

const REAL = { id: 'rc-real-1', type: 'room-climate', site: 'flat-1', subject: 'p-201' };
const lab = useLab({ devices: [REAL] });

const FLEET = `name: prov
seed: 7
start: now-10m
duration: 10m
speed: 600
sites:
  - id: prov-home
    residents:
      - id: p-prov
        devices:
          - { type: room-climate, room: bedroom, interval: 1m }
`;

type Row = { device_id: string; provenance?: string; temperature: number };
const rowsOf = (deviceId: string) =>
  lab.influx.query<Row>(lab.gw.db, `SELECT * FROM room_climate WHERE device_id = '${deviceId}'`);

async function publishReal(temperature: number) {
  const client = await connectDevice(lab.gw.mqttUrl, REAL.id);
  await client.publishAsync(
    `lab/${REAL.site}/room-climate/${REAL.id}/telemetry`,
    JSON.stringify({
      ts: new Date(Date.now() - 1000).toISOString(),
      temperature,
      humidity: 40,
      room: 'kitchen',
    }),
    { qos: 1 },
  );
  await client.endAsync();
}

describe('provenance through the gateway', () => {
  it('simulate registers its devices as simulated; their points say simulated, a real device says real', {
    timeout: 60_000,
  }, async () => {
    const fleet = join(lab.gw.dir, 'prov.yaml');
    await writeFile(fleet, FLEET);
    const result = await simulate(
      {
        fleet,
        mqttUrl: lab.gw.mqttUrl,
        registry: lab.gw.registryFile,
        influxUrl: lab.influx.url,
        influxDb: lab.gw.db,
        dataDir: join(lab.gw.dir, 'data'),
      },
      {},
      undefined,
    );
    expect(result.counters.readingsAcked).toBeGreaterThan(0);
    const text = await readFile(lab.gw.registryFile, 'utf8');
    expect(text).toMatch(/id: prov-home-room-climate\n(?: {4}.*\n)*? {4}provenance: simulated\n/);
    const data = await readRegistryFile(lab.gw.registryFile);
    expect(data.devices.map((d) => [d.id, d.provenance])).toEqual([
      [REAL.id, undefined],
      ['prov-home-room-climate', 'simulated'],
    ]);

    await publishReal(21.5);
    const simulated = await eventually(
      () => rowsOf('prov-home-room-climate'),
      (r) => r.length === result.counters.readingsAcked,
    );
    expect(new Set(simulated.map((r) => r.provenance))).toEqual(new Set(['simulated']));
    const real = await eventually(
      () => rowsOf(REAL.id),
      (r) => r.length === 1,
    );
    expect(real[0]?.provenance).toBe('real');
    const values = await lab.influx.query<{ key: string; value: string }>(
      lab.gw.db,
      'SHOW TAG VALUES FROM room_climate WITH KEY = "provenance"',
    );
    expect(values.map((v) => v.value).sort()).toEqual(['real', 'simulated']);
  });

  it('tags the readings after a registry change with the new provenance, and leaves earlier ones as they were', {
    timeout: 30_000,
  }, async () => {
    const metric = () => readMetric(lab.gw.app.opsPort, 'livinglab_registry_reloads_total');
    const before = (await rowsOf(REAL.id)).length;
    await publishReal(22.5);
    await eventually(
      () => rowsOf(REAL.id),
      (r) => r.length === before + 1,
    );
    const reloads = (await metric()) ?? 0;
    await lab.gw.editRegistry((d) => setDeviceProvenance(d, REAL.id, 'simulated'));
    await eventually(metric, (n) => (n ?? 0) > reloads);
    await publishReal(23.5);
    const rows = await eventually(
      () => rowsOf(REAL.id),
      (r) => r.length === before + 2,
    );
    const byTemperature = Object.fromEntries(rows.map((r) => [r.temperature, r.provenance]));
    expect(byTemperature).toMatchObject({ 22.5: 'real', 23.5: 'simulated' });
  });

  it('refuses to run a fleet as a device registered as real, and leaves that device as it was', async () => {
    const fleet = join(lab.gw.dir, 'clash.yaml');
    await writeFile(fleet, FLEET.replace(/prov-home/g, 'clash').replace('name: prov', 'name: clash'));
    await lab.gw.editRegistry((d) =>
      addDevice(d, {
        id: 'clash-room-climate',
        type: 'room-climate',
        schemaVersion: 1,
        site: 'clash',
        vendor: 'acme',
        provenance: 'real',
        passwordHash: hashSecretSync('x-password', 10),
      }),
    );
    const before = await readFile(lab.gw.registryFile, 'utf8');
    await expect(
      simulate(
        { fleet, mqttUrl: lab.gw.mqttUrl, registry: lab.gw.registryFile, dataDir: join(lab.gw.dir, 'data') },
        {},
        undefined,
      ),
    ).rejects.toThrow(/device clash-room-climate is registered as a real device .*devices provenance/);
    expect(await readFile(lab.gw.registryFile, 'utf8')).toBe(before);
  });
});

describe('what researchers and lab staff are told', () => {
  it('the dictionary describes the provenance column, both values, and that simulated data needs include=simulated', async () => {
    const res = await fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/dictionary`);
    const body = (await res.json()) as { columns: { name: string; description: string }[] };
    const column = body.columns.find((c) => c.name === 'provenance');
    expect(column).toMatchObject({
      kind: 'string',
      values: [
        { value: 'real', meaning: expect.stringContaining('real data') },
        { value: 'simulated', meaning: expect.stringContaining('never any person') },
      ],
    });
    expect(column?.description).toContain('include=simulated');
  });

  it('`livinglab status` counts real and simulated devices', { timeout: 30_000 }, async () => {
    await lab.gw.editRegistry((d) =>
      addDevice(d, {
        id: 'status-sim',
        type: 'room-climate',
        schemaVersion: 1,
        site: 'flat-9',
        vendor: 'acme',
        provenance: 'simulated',
        passwordHash: hashSecretSync('x-password', 10),
      }),
    );
    // Issued after the device was added: once the gateway knows the token, it knows the device.
    const token = await issueStaff(lab.gw, 'provenance-test');
    const expected = [...lab.gw.app.registry.current().devices.values()];
    const simulated = expected.filter((d) => d.provenance === 'simulated').length;
    expect(simulated).toBeGreaterThan(0);
    const res = await fetch(`http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const status = (await res.json()) as { devices: { id: string; provenance: string }[] };
    expect(status.devices.find((d) => d.id === 'status-sim')?.provenance).toBe('simulated');
    expect(status.devices.find((d) => d.id === REAL.id)?.provenance).toMatch(/^(real|simulated)$/);
    const cli = await runCli(['status', '--url', `http://127.0.0.1:${lab.gw.app.httpPort}`], {
      env: { LIVINGLAB_TOKEN: token },
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(
      new RegExp(
        `^devices real / simulated\\s+${expected.length - simulated} real, ${simulated} simulated$`,
        'm',
      ),
    );
  });
});

describe('livinglab devices', () => {
  it('add takes --provenance (real when not given) and `devices provenance` changes it; other values are refused', {
    timeout: 60_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'll-prov-cli-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'lab.yaml');
    const add = (id: string, ...extra: string[]) =>
      runCli([
        'devices',
        'add',
        '--registry',
        file,
        '--data-dir',
        dir,
        '--id',
        id,
        '--type',
        'room-climate',
        '--site',
        'lab-floor',
        '--vendor',
        'acme',
        ...extra,
      ]);
    const sim = await add('rc-sim', '--provenance', 'simulated');
    expect(sim.code, sim.stderr).toBe(0);
    expect(sim.stderr).toContain('simulated device rc-sim (room-climate@1) added');
    expect((await add('rc-res')).code).toBe(0);
    const bad = await add('rc-bad', '--provenance', 'fake');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('provenance "fake" must be real');
    const set = await runCli([
      'devices',
      'provenance',
      'rc-res',
      'simulated',
      '--registry',
      file,
      '--data-dir',
      dir,
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(await provenances(file)).toEqual({ 'rc-sim': 'simulated', 'rc-res': 'simulated' });
    const audit = await readFile(join(dir, 'audit.ndjson'), 'utf8');
    expect(audit).toMatch(/"event":"device-provenance-set".*"device":"rc-res".*"provenance":"simulated"/);
  });
});

/** A registry as a simulator left it before provenance existed, with a real device beside it. */
async function olderRegistry(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'll-prov-migrate-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'lab.yaml');
  const hash = hashSecretSync('some-password', 10);
  const device = (id: string, vendor: string) => ({
    id,
    type: 'room-climate',
    schemaVersion: 1,
    site: 'home-1',
    vendor,
    passwordHash: hash,
  });
  let data: RegistryData = EMPTY_REGISTRY;
  data = addDevice(data, device('home-1-room-climate', 'acme-sim')); // in the credentials file
  data = addDevice(data, device('old-sim-2', 'simulator')); // the simulator's default vendor
  data = addDevice(data, device('resident-rc', 'acme')); // a real device
  data = addDevice(data, { ...device('kept-real', 'simulator'), provenance: 'real' }); // staff said real
  await writeRegistryFile(file, data);
  await writeFile(
    join(dir, 'lab.sim-credentials.json'),
    JSON.stringify({ 'home-1-room-climate': 'pw', 'kept-real': 'pw' }),
    { mode: 0o600 },
  );
  // A comment lab staff wrote must survive the migration.
  await writeFile(file, `${await readFile(file, 'utf8')}# kept by the migration\n`);
  return file;
}

const provenances = async (file: string) =>
  Object.fromEntries((await readRegistryFile(file)).devices.map((d) => [d.id, d.provenance]));

describe('devices a simulator registered before provenance existed', () => {
  it('are marked simulated by `livinglab registry migrate`; real and already marked devices stay as they are', async () => {
    const file = await olderRegistry();
    const first = await runCli(['registry', 'migrate', '--registry', file]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(
      'marked 2 device(s) a simulator registered as provenance: simulated: home-1-room-climate, old-sim-2',
    );
    expect(await provenances(file)).toEqual({
      'home-1-room-climate': 'simulated',
      'old-sim-2': 'simulated',
      'resident-rc': undefined,
      'kept-real': 'real',
    });
    expect(await readFile(file, 'utf8')).toContain('# kept by the migration');
    const again = await runCli(['registry', 'migrate', '--registry', file]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('marked');
  });

  it('are marked simulated when the gateway starts, with a warning naming them', async () => {
    const file = await olderRegistry();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        cb();
      },
    });
    const registry = createRegistry({
      file,
      pollMs: 3_600_000,
      log: createLogger({ level: 'info', destination: sink }),
    });
    await registry.start();
    onTestFinished(() => registry.stop());
    expect(registry.current().devices.get('home-1-room-climate')?.provenance).toBe('simulated');
    expect(registry.current().devices.get('resident-rc')?.provenance).toBeUndefined();
    expect(await provenances(file)).toMatchObject({ 'old-sim-2': 'simulated', 'kept-real': 'real' });
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, devices: ['home-1-room-climate', 'old-sim-2'] }),
    );
  });
});
