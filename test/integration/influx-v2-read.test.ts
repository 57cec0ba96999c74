// Issue 18: with `--influx-api v2` the daily quality report and the research export read the bucket
// through the v1-compatible /query endpoint, as the database of the bucket's DBRP mapping (named
// like the bucket). Debian has no InfluxDB 2 server: the reads go to a real influxd 1.x (without
// authentication, so the token header is not checked; influx-read-auth.test.ts shows a 1.6 refusing
// it) whose database is named like the bucket, as a 2.x DBRP mapping or an InfluxDB 3 would serve it.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { useLab } from '../helpers/fixture.js';
import type { TestDevice, TestGateway } from '../helpers/gateway.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { dayFromToday, ndjson, openProject, untilTokens } from '../helpers/research.js';

const BUCKET = 'v2lab';
const BED: TestDevice = { id: 'bed-1', type: 'bed-sensor', site: 'home-1', subject: 'p-1', interval: '1h' };
const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
const v2 = (bucket: string) => ({ api: 'v2', org: 'lab', bucket, token: 'lab-read-token' });

// The readings are written by a v1 gateway into the database named like the bucket (influxd 1.6 has
// no /api/v2/write): yesterday, hourly at hh:30.
const lab = useLab({ devices: [BED], config: { timezone: 'UTC', influx: { db: BUCKET } } });
let dataDir: string;
beforeAll(async () => {
  const c = await connectDevice(lab.gw.mqttUrl, BED.id);
  const readings = Array.from({ length: 24 }, (_, h) => ({
    ts: `${yesterday}T${String(h).padStart(2, '0')}:30:00Z`,
    occupied: true,
    heartRate: 50 + h,
    respirationRate: 12,
  }));
  await c.publishAsync('lab/home-1/bed-sensor/bed-1/telemetry', JSON.stringify({ readings }), { qos: 1 });
  await c.endAsync();
  await lab.gw.app.drain.idle(10_000);
  // The v2 gateway's data folder says its daily report last ran three days ago: it is caught up at start.
  dataDir = mkdtempSync(join(tmpdir(), 'll-v2-read-'));
  const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
  writeFileSync(
    join(dataDir, 'jobs.json'),
    JSON.stringify({ 'quality-report': { lastRunAt: threeDaysAgo } }),
  );
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** A researcher token of a project over bed-1's subject, on `gw`. */
async function openSleepProject(gw: TestGateway): Promise<string> {
  let token = '';
  await gw.editRegistry((d0) => {
    let d = addProject(d0, openProject('sleep', ['bed-sensor'], ['heartRate']));
    d = setConsent(d, 'sleep', 'p-1', { on: dayFromToday(-3) });
    const issued = issueToken(d, {
      project: 'sleep',
      researcher: 'r',
      expires: new Date(Date.now() + 86_400_000),
    });
    token = issued.token;
    return issued.data;
  });
  await untilTokens(gw, 1);
  return token;
}

const exportReadings = (gw: TestGateway, token: string) =>
  fetch(`http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/sleep/readings?type=bed-sensor&format=ndjson`, {
    headers: { authorization: `Bearer ${token}` },
  });

describe('--influx-api v2 reads through /query', () => {
  const v2lab = lab.useGateway(() => ({
    devices: [BED],
    config: { dataDir, timezone: 'UTC', influx: v2(BUCKET) },
  }));

  it('the daily quality report runs (no silent skip) and reads the bucket', async () => {
    const report = join(dataDir, 'reports', `${yesterday}.json`);
    await eventually(async () => existsSync(report), Boolean, 20_000);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({
      date: yesterday,
      devices: [{ deviceId: 'bed-1', expected: 24, received: 24 }],
    });
    expect(v2lab.gw.app.scheduler.stats.get('quality-report')).toMatchObject({ runs: 1, failures: 0 });
  });

  it("the export reads the bucket's database", async () => {
    const res = await exportReadings(v2lab.gw, await openSleepProject(v2lab.gw));
    expect(res.status).toBe(200);
    const rows = await ndjson(res);
    expect(rows.map((r) => r.heartRate)).toEqual(Array.from({ length: 24 }, (_, h) => 50 + h));
  });

  it("a bucket without a mapped database: the export answers 502 with InfluxDB's message", async () => {
    const gw = await lab.startGateway({
      devices: [BED],
      config: { timezone: 'UTC', influx: v2('unmapped') },
    });
    const res = await exportReadings(gw, await openSleepProject(gw));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toBe(
      "InfluxDB refused the export's query: database not found: unmapped; lab staff: the gateway log names the cause (LL_INFLUX_QUERY)",
    );
    // serve said so at start already.
    expect(
      gw.logLines().find((l) => String(l.msg).startsWith('InfluxDB refuses the read credentials')),
    ).toMatchObject({ level: 40, err: { code: 'LL_INFLUX_QUERY' } });
    const line = gw.logLines().find((l) => l.msg === 'export refused: InfluxDB did not answer its query') as
      | { err: { code: string; message: string } }
      | undefined;
    expect(line?.err.message).toBe(
      `InfluxDB at ${lab.influx.url} (with a token) refused a query on database "unmapped" (database not found: unmapped)`,
    );
  });
});
