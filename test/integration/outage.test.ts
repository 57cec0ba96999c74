// InfluxDB stopped under load, then restarted: every acknowledged reading must be in InfluxDB
// afterwards, with its value. 5 s by default; LIVINGLAB_SOAK=1 (set by `npm run bench`) makes it the
// minute-long soak, and LL_OUTAGE_SECONDS overrides either. If the test fails while influxd is down,
// the lab fixture restarts it (test/helpers/fixture.ts).
import { expect, it, onTestFinished } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { compareWithInflux, startFleet } from '../helpers/publishers.js';

const OUTAGE_SECONDS = Number(process.env.LL_OUTAGE_SECONDS ?? (process.env.LIVINGLAB_SOAK === '1' ? 60 : 5));

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
  onTestFinished(() => fleet.stop());
  await fleet.untilAcked(500);
  await lab.influx.kill();
  const ackedAtStop = fleet.acked;
  // The outage lasts its length (that is what is tested), and the spool must have taken readings in it.
  const outageEnds = Date.now() + OUTAGE_SECONDS * 1000;
  await fleet.untilAcked(ackedAtStop + 100, (OUTAGE_SECONDS + 30) * 1000);
  await new Promise((r) => setTimeout(r, Math.max(0, outageEnds - Date.now())));
  const ackedDuringOutage = fleet.acked - ackedAtStop;
  const spooled = lab.gw.app.queue.stats.unconfirmedRecords;
  await lab.influx.restart();
  // Readings keep coming after the restart: wait for some to be acknowledged, not for a fixed time.
  await fleet.untilAcked(fleet.acked + 100);
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
