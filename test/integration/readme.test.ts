// The README's vendor example must work as printed.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { eventually } from '../helpers/mqtt.js';

const lab = useLab({
  devices: [{ id: 'ox-0001', type: 'pulse-oximeter', site: 'odense' }],
});

it('the mosquitto_pub example of the README lands a reading', async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const example = /```sh\n(mosquitto_pub -h GATEWAY[\s\S]*?)```/.exec(readme)?.[1];
  expect(example).toBeDefined();
  const command = (example ?? '')
    .replace('-h GATEWAY -p 1883', `-h 127.0.0.1 -p ${lab.gw.app.mqttPort}`)
    .replace("'PASSWORD'", `'${PASSWORD}'`);
  await promisify(execFile)('bash', ['-c', command]);
  const rows = await eventually(
    () =>
      lab.influx.query(
        lab.gw.db,
        `SELECT spo2, pulse, probe FROM pulse_oximeter WHERE device_id = 'ox-0001'`,
      ),
    (r) => r.length === 1,
  );
  expect(rows[0]).toMatchObject({ spo2: 97, pulse: 72, probe: 'finger' });
});
