// Issue 15, untested path 1: the simulator's check (`simulate --verify`, simulators/verify.ts) must
// fail, naming what differs, when InfluxDB or the rejects log does not match what was acknowledged.
// A small fleet runs through a real gateway; its outcome is then tampered with by real queries.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { loadFleet } from '../../simulators/fleet.js';
import { planFleet } from '../../simulators/plan.js';
import { provisionFleet } from '../../simulators/provision.js';
import { type RunRecord, runFleet } from '../../simulators/runner.js';
import { parseScenario } from '../../simulators/scenario.js';
import { type OutcomeReader, type VerifyReport, verifyRun } from '../../simulators/verify.js';
import { loadSchemas } from '../../src/schemas/load.js';
import { queryResult, quoteIdent, quoteString } from '../../src/storage/influxql.js';
import { readRejects } from '../../src/storage/rejects-log.js';
import { useLab } from '../helpers/fixture.js';
import { eventually } from '../helpers/mqtt.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const DEVICE = 'vf-01-pulse-oximeter';
// The resident is out during the day (no readings then): choose the time zone that makes the run's
// simulated half hour their night, as test/integration/simulate.test.ts does.
function nightZone(): string {
  const utcHour = new Date(Date.now() - 40 * 60_000).getUTCHours();
  const offset = ((((11 - utcHour) % 24) + 24) % 24) - 11;
  return `${offset < 0 ? '-' : '+'}${String(Math.abs(offset)).padStart(2, '0')}:00`;
}
const FLEET = `name: vf
seed: 15
start: now-40m
duration: 30m
speed: 600
timezone: "${nightZone()}"
vendor: simulator
sites:
  - id: vf-01
    residents:
      - id: p-vf-01
        devices:
          - { type: pulse-oximeter, interval: 1m }
`;
const SCENARIO = `name: invalid-only
events: []
invalid:
  rate: 0.2
  kinds: [range, json]
`;

const lab = useLab({ devices: [] });
const schemas = loadSchemas(join(ROOT, 'device-schemas'));
let record: RunRecord;
let plan: ReturnType<typeof planFleet>;

/** What the command line reads (src/cli/simulate.ts outcomeReader): the gateway's InfluxDB and rejects log. */
const outcome = (): OutcomeReader => ({
  async readings(measurement, deviceId, fromMs, toMs) {
    const { rows } = await queryResult(
      { url: lab.influx.url, db: lab.gw.db },
      `SELECT * FROM ${quoteIdent(measurement)} WHERE device_id = ${quoteString(deviceId)} AND time >= ${fromMs}ms AND time <= ${toMs}ms`,
    );
    return rows;
  },
  rejects: () => readRejects(join(lab.gw.dir, 'data', 'rejects.ndjson')),
});
const verify = (): Promise<VerifyReport> => verifyRun({ plan, record, schemas, outcome: outcome() });

beforeAll(async () => {
  const fleetFile = join(lab.gw.dir, 'vf.yaml');
  await writeFile(fleetFile, FLEET);
  const fleet = loadFleet(fleetFile);
  plan = planFleet(fleet, parseScenario(SCENARIO, 'invalid-only.yaml'), schemas);
  const { credentials } = await provisionFleet({ registry: lab.gw.registryFile, fleet, schemas });
  await eventually(
    async () => lab.gw.app.registry.current().data.devices.length,
    (n) => n === fleet.devices.length,
  );
  ({ record } = await runFleet({ plan, mqttUrl: lab.gw.mqttUrl, credentials, remember: true }));
  await eventually(verify, (r) => r.ok, 30_000);
}, 90_000);

const influxql = async (q: string) => {
  const res = await fetch(`${lab.influx.url}/query?db=${lab.gw.db}&q=${encodeURIComponent(q)}`, {
    method: 'POST',
  });
  expect(res.status).toBe(200);
  expect(await res.text()).not.toContain('"error"');
};
const write = async (line: string) => {
  const res = await fetch(`${lab.influx.url}/write?db=${lab.gw.db}`, { method: 'POST', body: line });
  expect(res.status).toBe(204);
};

/** Tag keys and field types of pulse_oximeter, as InfluxDB holds them. */
async function layout() {
  const tags = await lab.influx.query<{ tagKey: string }>(lab.gw.db, 'SHOW TAG KEYS FROM pulse_oximeter');
  const fields = await lab.influx.query<{ fieldKey: string; fieldType: string }>(
    lab.gw.db,
    'SHOW FIELD KEYS FROM pulse_oximeter',
  );
  return { tags: tags.map((t) => t.tagKey), fields };
}

/** The stored point of DEVICE at its n-th acknowledged time, as line protocol, with `change` applied. */
async function storedLine(n: number, change: Record<string, string | number>) {
  const reading = record.acked.get(DEVICE)?.[n];
  if (!reading) throw new Error(`no acknowledged reading ${n}`);
  const t = Date.parse(reading.ts);
  const [row] = await lab.influx.query<Record<string, unknown>>(
    lab.gw.db,
    `SELECT * FROM pulse_oximeter WHERE device_id = '${DEVICE}' AND time = ${t}ms`,
  );
  if (!row) throw new Error(`reading ${n} is not stored`);
  const value = (k: string) => change[k] ?? row[k];
  const { tags, fields } = await layout();
  const tagSet = tags.filter((k) => value(k) !== null && value(k) !== '').map((k) => `${k}=${value(k)}`);
  const fieldSet = fields
    .filter((f) => value(f.fieldKey) !== null && value(f.fieldKey) !== undefined)
    .map((f) => `${f.fieldKey}=${value(f.fieldKey)}${f.fieldType === 'integer' ? 'i' : ''}`);
  const line = `pulse_oximeter,${tagSet.join(',')} ${fieldSet.join(',')} ${t}000000`;
  return { t, iso: new Date(t).toISOString(), line };
}

const COUNTERS = ['wrongValues', 'missing', 'storedTwice', 'invalidMissing'] as const;

/** Verifies and expects it to fail on exactly one difference, of kind `counter`, named by `problem`. */
async function expectOnly(counter: (typeof COUNTERS)[number], problem: unknown) {
  const report = await verify();
  expect(report).toMatchObject({
    ok: false,
    ...Object.fromEntries(COUNTERS.map((c) => [c, c === counter ? 1 : 0])),
  });
  expect(report.problems).toEqual([problem]);
}

describe('simulate --verify fails, naming what differs', () => {
  it('passes on the untouched outcome, with readings and expected rejections to check', async () => {
    const report = await verify();
    expect(report.ok).toBe(true);
    expect(report.readingsExpected).toBeGreaterThan(10);
    expect(report.invalidExpected).toBeGreaterThan(0);
    expect(report.invalidConfirmed).toBe(report.invalidExpected);
  });

  it('reports a reading changed in InfluxDB', async () => {
    const original = await storedLine(2, {});
    onTestFinished(() => write(original.line));
    const { line, iso } = await storedLine(2, { spo2: 42 });
    await write(line);
    await expectOnly('wrongValues', expect.stringMatching(`^${DEVICE} ${iso}: spo2 is 42, sent \\d+$`));
  });

  it('reports a reading stored twice in InfluxDB (a second series at the same time)', async () => {
    const { line, iso } = await storedLine(4, { schema_version: '9' });
    onTestFinished(() => influxql(`DROP SERIES FROM pulse_oximeter WHERE schema_version = '9'`));
    await write(line);
    await expectOnly('storedTwice', `${DEVICE} ${iso}: stored 2 times in InfluxDB, acknowledged once`);
  });

  it('reports a simulated reading stored as real', async () => {
    const original = await storedLine(8, {});
    const { line, iso } = await storedLine(8, { provenance: 'real' });
    const drop = (provenance: string) =>
      influxql(
        `DELETE FROM pulse_oximeter WHERE device_id = '${DEVICE}' AND provenance = '${provenance}' AND time = '${iso}'`,
      );
    onTestFinished(async () => {
      await drop('real');
      await write(original.line);
    });
    await drop('simulated');
    await write(line);
    await expectOnly('wrongValues', `${DEVICE} ${iso}: stored with provenance real, not simulated`);
  });

  it('reports a reading missing from InfluxDB', async () => {
    const { iso, line } = await storedLine(6, {});
    onTestFinished(() => write(line));
    await influxql(`DELETE FROM pulse_oximeter WHERE device_id = '${DEVICE}' AND time = '${iso}'`);
    await expectOnly('missing', `${DEVICE}: reading at ${iso} was acknowledged but is not in InfluxDB`);
  });

  it('reports an expected rejection missing from the rejects log', async () => {
    const file = join(lab.gw.dir, 'data', 'rejects.ndjson');
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    const first = record.invalid[0];
    if (!first) throw new Error('the run sent no invalid payload');
    const kept = lines.filter((l) => (JSON.parse(l) as { payload: string }).payload !== first.payload);
    expect(kept.length).toBeLessThan(lines.length);
    onTestFinished(() => writeFile(file, lines.map((l) => `${l}\n`).join('')));
    await writeFile(file, kept.map((l) => `${l}\n`).join(''));
    await expectOnly(
      'invalidMissing',
      `${first.device}: deliberately invalid payload (${first.kind}) sent at ${first.at} is not in the rejects log`,
    );
  });
});
