// The lab fixture keeps one failure from taking the file's other tests down: a test that stops
// influxd (an outage) and ends before restarting it, for instance by failing, leaves the next test
// a running influxd with its data.
import { expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';

const lab = useLab();

it('a test stops influxd and ends without restarting it', async () => {
  await lab.influx.client('kept').createDatabase('kept');
  await lab.influx.kill();
  expect(lab.influx.running()).toBe(false);
});

it('the next test finds influxd running again, with the data written before the outage', async () => {
  expect(lab.influx.running()).toBe(true);
  expect((await fetch(`${lab.influx.url}/ping`)).status).toBe(204);
  expect(await lab.influx.client('kept').getDatabaseNames()).toContain('kept');
});
