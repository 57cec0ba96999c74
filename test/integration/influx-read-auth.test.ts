// Issue 18, one query client for every read path: against a real influxd that requires a login
// (auth-enabled, an admin for the writer and a user with READ only), the research export, the daily
// quality report, `livinglab report` and `simulate --verify` read with the read-only user, and a
// wrong password or a missing right fails naming InfluxDB's URL and the user, never the password.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { simulate } from '../../src/cli/simulate.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, type TestDevice, type TestGateway } from '../helpers/gateway.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { dayFromToday, ndjson, openProject, untilTokens } from '../helpers/research.js';

const DB = 'authlab';
const ADMIN = { username: 'admin', password: 'admin-secret-pw' };
const READER = { username: 'reader', password: 'reader-secret-pw' };
const WRONG = 'wrong-secret-pw';
const BED: TestDevice = { id: 'bed-1', type: 'bed-sensor', site: 'home-1', subject: 'p-1', interval: '1h' };
const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

/** The gateway's InfluxDB options: the admin writes, `read` reads. */
const influxOptions = (url: string, read: { username: string; password: string }) => ({
  url,
  db: DB,
  username: ADMIN.username,
  password: ADMIN.password,
  readUsername: read.username,
  readPassword: read.password,
});

let influx: Influxd;
let gw: TestGateway;
let token = '';

beforeAll(async () => {
  influx = await startInfluxd({ auth: ADMIN });
  await influx.exec(`CREATE DATABASE "${DB}"`);
  await influx.exec(`CREATE USER "${READER.username}" WITH PASSWORD '${READER.password}'`);
  await influx.exec(`GRANT READ ON "${DB}" TO "${READER.username}"`);
  gw = await startGateway({
    influxUrl: influx.url,
    devices: [BED],
    config: { timezone: 'UTC', influx: influxOptions(influx.url, READER) },
  });
  // Yesterday, hourly at hh:30: 24 readings through the gateway (the admin writes them).
  const c = await connectDevice(gw.mqttUrl, BED.id);
  const readings = Array.from({ length: 24 }, (_, h) => ({
    ts: `${yesterday}T${String(h).padStart(2, '0')}:30:00Z`,
    occupied: true,
    heartRate: 50 + h,
    respirationRate: 12,
  }));
  await c.publishAsync('lab/home-1/bed-sensor/bed-1/telemetry', JSON.stringify({ readings }), { qos: 1 });
  await c.endAsync();
  await gw.app.drain.idle(10_000);
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
}, 60_000);
afterAll(async () => {
  await gw?.stop();
  await influx?.stop();
});

const exportReadings = () =>
  fetch(`http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/sleep/readings?type=bed-sensor&format=ndjson`, {
    headers: { authorization: `Bearer ${token}` },
  });

/** The text every refusal of the reader's password must carry: InfluxDB's URL, the user, InfluxDB's reason. */
const refusedReader = (status: number, reason: string) =>
  `InfluxDB at ${influx.url} (user "${READER.username}") refused the read (HTTP ${status}: ${reason})`;

describe('research export with InfluxDB authentication', () => {
  it('exports with the read-only user', async () => {
    const res = await exportReadings();
    expect(res.status).toBe(200);
    const rows = await ndjson(res);
    expect(rows).toHaveLength(24);
    expect(rows.map((r) => r.heartRate)).toEqual(Array.from({ length: 24 }, (_, h) => 50 + h));
  });

  it("answers 502 with InfluxDB's message when InfluxDB refuses the password; the log names URL and user", async () => {
    await influx.exec(`SET PASSWORD FOR "${READER.username}" = '${WRONG}'`);
    onTestFinished(() => influx.exec(`SET PASSWORD FOR "${READER.username}" = '${READER.password}'`));
    const res = await exportReadings();
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: string };
    expect(body.error).toBe(
      "InfluxDB refused the export's query (HTTP 401): authorization failed; lab staff: the gateway log names the cause (LL_INFLUX_AUTH)",
    );
    const line = gw.logLines().find((l) => l.msg === 'export refused: InfluxDB did not answer its query') as
      | { err: { code: string; message: string } }
      | undefined;
    expect(line?.err.code).toBe('LL_INFLUX_AUTH');
    expect(line?.err.message).toContain(refusedReader(401, 'authorization failed'));
    expect(JSON.stringify(gw.logLines())).not.toContain(READER.password);
    // The audit log records the export as failed, with no row sent and the staff-side reason.
    const id = res.headers.get('x-livinglab-export');
    const audit = readFileSync(join(gw.dir, 'data', 'audit.ndjson'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as { export?: string; event: string; status?: string; rows?: number; error?: string },
      );
    expect(audit.find((e) => e.export === id && e.event === 'export-ended')).toMatchObject({
      status: 'failed',
      rows: 0,
      error: expect.stringContaining(refusedReader(401, 'authorization failed')),
    });
  });

  it('answers 502 when the user lacks READ on the database; the log says what to grant', async () => {
    await influx.exec(`REVOKE READ ON "${DB}" FROM "${READER.username}"`);
    onTestFinished(() => influx.exec(`GRANT READ ON "${DB}" TO "${READER.username}"`));
    const res = await exportReadings();
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /^InfluxDB refused the export's query \(HTTP 403\): .*not authorized.*requires READ on authlab/,
    );
    const line = gw
      .logLines()
      .findLast((l) => l.msg === 'export refused: InfluxDB did not answer its query') as
      | { err: { code: string; message: string } }
      | undefined;
    expect(line?.err.code).toBe('LL_INFLUX_AUTH');
    expect(line?.err.message).toContain(`GRANT READ ON "${DB}" TO "${READER.username}"`);
  });
});

/** A data folder whose jobs state says the daily report last ran three days ago: it is caught up at start. */
function dataDirOwingAReport(): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'll-read-auth-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
  writeFileSync(
    join(dataDir, 'jobs.json'),
    JSON.stringify({ 'quality-report': { lastRunAt: threeDaysAgo } }),
  );
  return dataDir;
}

describe('quality report with InfluxDB authentication', () => {
  it('the daily job reads with the read-only user', async () => {
    const dataDir = dataDirOwingAReport();
    const g = await startGateway({
      influxUrl: influx.url,
      devices: [BED],
      config: { dataDir, timezone: 'UTC', influx: influxOptions(influx.url, READER) },
    });
    onTestFinished(() => g.stop());
    const report = join(dataDir, 'reports', `${yesterday}.json`);
    await eventually(async () => existsSync(report), Boolean, 20_000);
    expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({
      date: yesterday,
      devices: [{ deviceId: 'bed-1', expected: 24, received: 24 }],
    });
  });

  it('the daily job fails with LL_INFLUX_AUTH naming URL and user on a wrong password', async () => {
    const dataDir = dataDirOwingAReport();
    const g = await startGateway({
      influxUrl: influx.url,
      devices: [BED],
      config: { dataDir, timezone: 'UTC', influx: influxOptions(influx.url, { ...READER, password: WRONG }) },
    });
    onTestFinished(() => g.stop());
    const failed = (await eventually(
      async () => g.logLines().find((l) => l.msg === 'scheduled job failed'),
      Boolean,
      20_000,
    )) as { job: string; err: { code: string; message: string } };
    expect(failed.job).toBe('quality-report');
    expect(failed.err.code).toBe('LL_INFLUX_AUTH');
    expect(failed.err.message).toContain(refusedReader(401, 'authorization failed'));
    expect(failed.err.message).toContain('influx.readPassword');
    expect(g.app.scheduler.stats.get('quality-report')?.failures).toBe(1);
    expect(JSON.stringify(g.logLines())).not.toContain(WRONG);
    expect(existsSync(join(dataDir, 'reports', `${yesterday}.json`))).toBe(false);
  });

  it('serve warns at start that InfluxDB refuses the read credentials, naming URL and user', async () => {
    const g = await startGateway({
      influxUrl: influx.url,
      devices: [],
      config: { influx: influxOptions(influx.url, { ...READER, password: WRONG }) },
    });
    onTestFinished(() => g.stop());
    const warning = g
      .logLines()
      .find((l) => l.level === 40 && String(l.msg).startsWith('InfluxDB refuses')) as
      | { msg: string; err: { code: string; message: string } }
      | undefined;
    expect(warning?.msg).toBe(
      'InfluxDB refuses the read credentials: exports and the daily quality report will fail until they are fixed',
    );
    expect(warning?.err.code).toBe('LL_INFLUX_AUTH');
    expect(warning?.err.message).toContain(refusedReader(401, 'authorization failed'));
    expect(JSON.stringify(g.logLines())).not.toContain(WRONG);
    // With the right password there is nothing to warn of.
    expect(gw.logLines().some((l) => String(l.msg).startsWith('InfluxDB refuses'))).toBe(false);
  });

  const report = (password: string, extra: Record<string, string> = {}) =>
    runCli(['report', '--date', yesterday, '--registry', gw.registryFile, '--influx-url', influx.url], {
      env: {
        LIVINGLAB_TIMEZONE: 'UTC',
        LIVINGLAB_DATA_DIR: join(gw.dir, 'data'),
        LIVINGLAB_INFLUX_DB: DB,
        LIVINGLAB_INFLUX_READ_USERNAME: READER.username,
        LIVINGLAB_INFLUX_READ_PASSWORD: password,
        ...extra,
      },
    });

  it('livinglab report reads with the read-only user', async () => {
    const r = await report(READER.password);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = r.stdout.split('\n').find((f) => f.endsWith('.json')) as string;
    expect(JSON.parse(readFileSync(json, 'utf8'))).toMatchObject({
      devices: [{ deviceId: 'bed-1', expected: 24, received: 24 }],
    });
  });

  it('livinglab report exits 2 naming URL and user, not the password, on a wrong password', async () => {
    const r = await report(WRONG);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `livinglab: ${refusedReader(401, 'authorization failed')}; check influx.readUsername`,
    );
    expect(r.stderr).not.toContain(WRONG);
  });

  it('livinglab report --influx-api v2 sends a token, which influxd 1.6 refuses: exit 2 naming the token option', async () => {
    // InfluxDB 1.8+ would take `Token user:password`; Debian's 1.6 knows no Token scheme (README).
    const r = await report(READER.password, {
      LIVINGLAB_INFLUX_API: 'v2',
      LIVINGLAB_INFLUX_BUCKET: DB,
      LIVINGLAB_INFLUX_READ_TOKEN: `${READER.username}:${READER.password}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `livinglab: InfluxDB at ${influx.url} (with a token) refused the read (HTTP 401: unable to parse authentication credentials); check influx.readToken`,
    );
    expect(r.stderr).not.toContain(READER.password);
  });
});

// The resident is out during the day (no readings then): the fleet's time zone makes the simulated
// half hour their night, as test/integration/verify-fails.test.ts does.
function nightZone(): string {
  const utcHour = new Date(Date.now() - 40 * 60_000).getUTCHours();
  const offset = ((((11 - utcHour) % 24) + 24) % 24) - 11;
  return `${offset < 0 ? '-' : '+'}${String(Math.abs(offset)).padStart(2, '0')}:00`;
}

describe('simulate --verify with InfluxDB authentication', () => {
  const run = (password: string) => {
    const fleet = join(gw.dir, 'ra.yaml');
    writeFileSync(
      fleet,
      `name: ra\nseed: 18\nstart: now-40m\nduration: 30m\nspeed: 1200\ntimezone: "${nightZone()}"\nvendor: simulator\n` +
        'sites:\n  - id: ra-01\n    residents:\n      - id: p-ra-01\n        devices:\n          - { type: pulse-oximeter, interval: 1m }\n',
    );
    return simulate(
      {
        fleet,
        mqttUrl: gw.mqttUrl,
        registry: gw.registryFile,
        influxUrl: influx.url,
        influxDb: DB,
        dataDir: join(gw.dir, 'data'),
        verify: true,
      },
      { LIVINGLAB_INFLUX_READ_USERNAME: READER.username, LIVINGLAB_INFLUX_READ_PASSWORD: password },
      undefined,
    );
  };

  it('verifies the run with the read-only user', { timeout: 90_000 }, async () => {
    const result = await run(READER.password);
    expect(result.counters.readingsAcked).toBeGreaterThan(0);
    expect(result.verified).toBe(true);
  });

  it('fails with LL_INFLUX_AUTH naming URL and user on a wrong password', { timeout: 90_000 }, async () => {
    const failure = await run(WRONG).then(
      () => undefined,
      (err: unknown) => err as { code: string; message: string },
    );
    expect(failure?.code).toBe('LL_INFLUX_AUTH');
    expect(failure?.message).toContain(refusedReader(401, 'authorization failed'));
    expect(failure?.message).not.toContain(WRONG);
  });
});
