// Untested paths 7, 8 and 10 of issue 15 against a real influxd and real MQTT clients: readings
// carried end to end with the spool switched off, aggregates other than mean in the research API,
// the job-failure metric and readiness without a registry.
import { describe, expect, it } from 'vitest';
import { createStatusReports } from '../../src/http/status.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import type { RegistryData } from '../../src/registry/types.js';
import { useLab } from '../helpers/fixture.js';
import { readMetric } from '../helpers/metrics.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';
import { dayFromToday, ndjson, openProject, untilTokens } from '../helpers/research.js';

const lab = useLab();
const HOUR = 3_600_000;

describe('--no-spool (spool.enabled false)', () => {
  it('carries readings published over MQTT into InfluxDB', async () => {
    const gw = await lab.startGateway({
      devices: [{ id: 'bed-ns', type: 'bed-sensor', site: 'home-ns', subject: 'p-ns' }],
      config: { spool: { enabled: false } },
    });
    expect(gw.app.config.spool.enabled).toBe(false);
    const c = await connectDevice(gw.mqttUrl, 'bed-ns');
    const ts = new Date(Date.now() - 60_000).toISOString();
    await c.publishAsync(
      'lab/home-ns/bed-sensor/bed-ns/telemetry',
      JSON.stringify({ ts, occupied: true, heartRate: 61, respirationRate: 14 }),
      { qos: 1 },
    );
    await c.endAsync();
    const q = encodeURIComponent('SELECT "heartRate" FROM bed_sensor');
    const rows = await eventually(
      async () => {
        const res = await fetch(`${lab.influx.url}/query?db=${gw.db}&epoch=ms&q=${q}`);
        const body = (await res.json()) as { results: { series?: { values: [number, number][] }[] }[] };
        return body.results[0]?.series?.[0]?.values ?? [];
      },
      (r) => r.length > 0,
    );
    expect(rows).toEqual([[Date.parse(ts), 61]]);
    // Nothing went through a spool: there is none to hold the readings. The in-memory queue lets
    // the batch go just after InfluxDB answered, so under load the row can be seen a moment before.
    await eventually(
      async () => gw.app.queue.stats.bytes,
      (bytes) => bytes === 0,
    );
    expect(gw.app.config.spool.enabled).toBe(false);
  });
});

describe('research API aggregates', () => {
  it('min, max, count and last over a window equal those of the raw readings', {
    timeout: 30_000,
  }, async () => {
    const gw = await lab.startGateway({
      devices: [{ id: 'bed-ag', type: 'bed-sensor', site: 'home-ag', subject: 'p-ag' }],
    });
    // Two days of hourly readings, ending two hours ago, with values in no sorted order.
    const start = Math.floor((Date.now() - 50 * HOUR) / HOUR) * HOUR;
    const values = Array.from({ length: 48 }, (_, h) => 40 + ((h * 17) % 31));
    const c = await connectDevice(gw.mqttUrl, 'bed-ag');
    const readings = values.map((v, h) => ({
      ts: new Date(start + h * HOUR).toISOString(),
      occupied: true,
      heartRate: v,
      respirationRate: 12,
    }));
    await c.publishAsync('lab/home-ag/bed-sensor/bed-ag/telemetry', JSON.stringify({ readings }), { qos: 1 });
    await c.endAsync();
    let token = '';
    await gw.editRegistry((d0) => {
      let d: RegistryData = addProject(d0, openProject('agg', ['bed-sensor']));
      d = setConsent(d, 'agg', 'p-ag', { on: dayFromToday(-10) });
      const r = issueToken(d, {
        project: 'agg',
        researcher: 'r',
        expires: new Date(Date.now() + 86_400_000),
      });
      token = r.token;
      return r.data;
    });
    await untilTokens(gw, 1);
    const get = async (query: string) =>
      ndjson(
        await fetch(
          `http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/agg/readings?type=bed-sensor&fields=heartRate&format=ndjson&${query}`,
          { headers: { authorization: `Bearer ${token}` } },
        ),
      );
    const raw = await eventually(
      () => get(''),
      (r) => r.length === values.length,
    );
    const byDay = new Map<string, number[]>();
    for (const r of raw) {
      const day = (r.time as string).slice(0, 10);
      byDay.set(day, [...(byDay.get(day) ?? []), r.heartRate as number]);
    }
    const expected: Record<string, (v: number[]) => number> = {
      min: (v) => Math.min(...v),
      max: (v) => Math.max(...v),
      count: (v) => v.length,
      last: (v) => v[v.length - 1] as number,
    };
    for (const [fn, of] of Object.entries(expected)) {
      const agg = await get(`every=1d&fn=${fn}`);
      const got = Object.fromEntries(agg.map((a) => [(a.time as string).slice(0, 10), a.heartRate]));
      const want = Object.fromEntries([...byDay].map(([day, v]) => [day, of(v)]));
      expect({ fn, got }).toEqual({ fn, got: want });
    }
  });
});

describe('the running gateway', () => {
  it('counts a failing scheduled job in livinglab_job_failures_total', { timeout: 20_000 }, async () => {
    const gw = await lab.startGateway({});
    gw.app.scheduler.add('always-fails', '* * * * * *', async () => {
      throw new Error('boom');
    });
    gw.app.scheduler.add('always-works', '* * * * * *', async () => {});
    const failures = await eventually(
      async () => (await readMetric(gw.app.opsPort, 'livinglab_job_failures_total{job="always-fails"}')) ?? 0,
      (n) => n >= 1,
      10_000,
    );
    const runs = await readMetric(gw.app.opsPort, 'livinglab_job_runs_total{job="always-fails"}');
    expect(runs).toBeGreaterThanOrEqual(failures);
    const works = `{job="always-works"}`;
    await eventually(
      async () => (await readMetric(gw.app.opsPort, `livinglab_job_runs_total${works}`)) ?? 0,
      (n) => n >= 1,
    );
    expect(await readMetric(gw.app.opsPort, `livinglab_job_failures_total${works}`)).toBe(0);
    expect(gw.logLines().find((l) => l.msg === 'scheduled job failed')).toMatchObject({
      job: 'always-fails',
    });
  });

  it('is not ready while it has no registry, and ready with one', async () => {
    const gw = await lab.startGateway({});
    const res = await fetch(`http://127.0.0.1:${gw.app.opsPort}/readyz`);
    expect([res.status, await res.json()]).toEqual([200, { status: 'ready' }]);
    const { app } = gw;
    const noRegistry = createStatusReports({
      registry: {
        current: () => {
          throw new Error('registry used before start()');
        },
      },
      queue: app.queue,
      drain: app.drain,
      writer: app.writer,
      influxUrl: lab.influx.url,
      source: app.broker,
      liveness: app.liveness,
      pipeline: app.pipeline,
      isStarted: () => true,
    });
    expect(await noRegistry.readiness()).toEqual(['registry not loaded']);
  });
});
