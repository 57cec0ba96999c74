// The lab fixture keeps one failure from taking the file's other tests down: a test that stops
// influxd (an outage) and ends before restarting it, for instance by failing, leaves the next test
// a running influxd with its data.
import { expect, it, onTestFinished } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { createGatewayProcess } from '../helpers/gateway-process.js';
import { startInfluxd } from '../helpers/influxd.js';

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

/** Whether a process with this pid still exists (signal 0 only checks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function failedStartPid(start: Promise<unknown>): Promise<number> {
  const err = (await start.then(
    () => new Error('started'),
    (e: unknown) => e,
  )) as Error;
  const pid = Number(/\(pid (\d+)\)/.exec(err.message)?.[1]);
  expect(pid).toBeGreaterThan(0);
  return pid;
}

it('an influxd that does not answer in time is killed, not left running', async () => {
  const pid = await failedStartPid(startInfluxd({ startTimeoutMs: 1 }));
  expect(alive(pid)).toBe(false);
});

it('a gateway process that does not start in time is killed, not left running', async () => {
  const gw = await createGatewayProcess({
    influxUrl: lab.influx.url,
    db: 'never',
    devices: [],
    startTimeoutMs: 1,
  });
  onTestFinished(() => gw.stop());
  const pid = await failedStartPid(gw.start());
  await expect.poll(() => alive(pid), { timeout: 5000 }).toBe(false);
});
