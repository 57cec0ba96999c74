// InfluxDB stopped for a minute under load (LL_OUTAGE_SECONDS overrides the 60 s), then restarted:
// every acknowledged reading must be in InfluxDB afterwards, with its value.
import { expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { compareWithInflux, startFleet } from '../helpers/publishers.js';

const OUTAGE_SECONDS = Number(process.env.LL_OUTAGE_SECONDS ?? 60);

const lab = useLab({
  devices: Array.from({ length: 10 }, (_, i) => ({
    id: `out-ox-${i}`,
    type: 'pulse-oximeter',
    site: 'outage',
  })),
  config: { writer: { maxRetryDelay: '2s' } },
});

it(`loses nothing when influxd is down for ${OUTAGE_SECONDS} s under load`, {
  timeout: (OUTAGE_SECONDS + 90) * 1000,
}, async () => {
  const fleet = startFleet({
    ids: Array.from({ length: 10 }, (_, i) => `out-ox-${i}`),
    site: 'outage',
    url: () => lab.gw.mqttUrl,
    intervalMs: 20,
  });
  await fleet.untilAcked(500);
  await lab.influx.kill();
  const ackedAtStop = fleet.acked;
  await new Promise((r) => setTimeout(r, OUTAGE_SECONDS * 1000));
  const ackedDuringOutage = fleet.acked - ackedAtStop;
  const spooled = lab.gw.app.queue.stats.unconfirmedRecords;
  await lab.influx.restart();
  await new Promise((r) => setTimeout(r, 2000));
  await fleet.stop();
  const result = await compareWithInflux(fleet, lab.influx, lab.gw.db, 90_000);
  console.log(
    `[fault] influxd down ${OUTAGE_SECONDS} s: ${JSON.stringify({ ...result, ackedDuringOutage, spooledAtRestart: spooled, retries: lab.gw.app.drain.stats.writeRetries })}`,
  );
  expect(ackedDuringOutage).toBeGreaterThan(0);
  expect(result).toMatchObject({ lost: 0, wrongValues: 0 });
  expect(result.stored).toBe(result.acked);
  expect(lab.gw.app.drain.stats.writeRetries).toBeGreaterThan(0);
});
