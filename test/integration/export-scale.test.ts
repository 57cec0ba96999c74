// An export of 1,000,000 rows streams through the gateway with bounded memory.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { type Influxd, startInfluxd } from '../helpers/influxd.js';
import { eventually } from '../helpers/mqtt.js';

const ROWS = 1_000_000;
let influx: Influxd;
let gw: TestGateway;
let token = '';

beforeAll(async () => {
  influx = await startInfluxd();
  gw = await startGateway({
    influxUrl: influx.url,
    devices: [{ id: 'bed-big', type: 'bed-sensor', site: 'big', subject: 'p-big' }],
  });
  // Points written straight to InfluxDB (as the gateway would write them), one every 500 ms.
  const start = Date.now() - 7 * 86_400_000;
  for (let i = 0; i < ROWS; i += 100_000) {
    let body = '';
    for (let j = i; j < i + 100_000; j++) {
      body += `bed_sensor,device_id=bed-big,device_type=bed-sensor,schema_version=1,site=big,subject=p-big heartRate=${50 + (j % 30)}i,occupied=true ${(start + j * 500) * 1_000_000}\n`;
    }
    const res = await fetch(`${influx.url}/write?db=${gw.db}`, { method: 'POST', body });
    expect(res.status).toBe(204);
  }
  const day = (o: number) => new Date(Date.now() + o * 86_400_000).toISOString().slice(0, 10);
  await gw.editRegistry((d0) => {
    let d = addProject(d0, {
      id: 'big',
      from: day(-10),
      to: day(1),
      types: ['bed-sensor'],
      fields: ['heartRate'],
    });
    d = setConsent(d, 'big', 'p-big', { on: day(-10) });
    const r = issueToken(d, {
      project: 'big',
      researcher: 'bench',
      expires: new Date(Date.now() + 86_400_000),
    });
    token = r.token;
    return r.data;
  });
  await eventually(
    async () => gw.app.registry.current().data.tokens.length,
    (n) => n === 1,
  );
}, 120_000);
afterAll(async () => {
  await gw?.stop();
  await influx?.stop();
});

it(`streams ${ROWS.toLocaleString('en')} rows as CSV with bounded memory`, { timeout: 180_000 }, async () => {
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const res = await fetch(
    `http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/big/readings?type=bed-sensor&format=csv`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );
  let lines = 0;
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  }
  clearInterval(sampler);
  const growthMiB = (peak - before) / 1024 / 1024;
  console.log(
    `[export] ${lines - 1} rows, ${(bytes / 1024 / 1024).toFixed(1)} MiB of CSV, RSS before ${(before / 1048576).toFixed(0)} MiB, peak ${(peak / 1048576).toFixed(0)} MiB (+${growthMiB.toFixed(0)} MiB)`,
  );
  expect(lines - 1).toBe(ROWS);
  // Buffering the export would hold ~1,000,000 row objects (several hundred MiB); streaming does not.
  expect(growthMiB).toBeLessThan(150);
});
