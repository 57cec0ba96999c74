import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createInfluxV1Writer } from '../../src/storage/influx-v1.js';
import { createInfluxV2Writer } from '../../src/storage/influx-v2.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice } from '../helpers/mqtt.js';
import { closedPortUrl } from '../helpers/ports.js';
import { startVictoria, type Victoria } from '../helpers/victoria.js';
import { writerSuite } from './writer.suite.js';

let vm: Victoria;
/** A port bound and closed just before the tests: nothing listens there. */
let nowhere: string;
const log = createLogger({ level: 'silent' });

const lab = useLab();
beforeAll(async () => {
  vm = await startVictoria();
  nowhere = await closedPortUrl();
});
afterAll(async () => {
  await vm?.stop();
});

writerSuite('influx-v1', () => ({
  writer: () => createInfluxV1Writer({ url: lab.influx.url, db: 'suite' }),
  unreachable: () => createInfluxV1Writer({ url: nowhere, db: 'suite' }),
  readBack: async (id) => {
    const rows = await lab.influx.query<{ time: number; spo2: number }>(
      'suite',
      `SELECT spo2 FROM pulse_oximeter WHERE device_id = '${id}'`,
    );
    return new Map(rows.map((r) => [Math.round(r.time / 1e6), r.spo2]));
  },
}));

writerSuite('influx-v2', () => ({
  writer: () => createInfluxV2Writer({ url: vm.url, org: 'lab', bucket: 'suite', token: 'unused', log }),
  unreachable: () =>
    createInfluxV2Writer({ url: nowhere, org: 'lab', bucket: 'suite', token: 'unused', log }),
  readBack: async (id) => {
    const series = await vm.exportSeries(`pulse_oximeter_spo2{device_id="${id}"}`);
    const out = new Map<number, number>();
    for (const s of series) {
      s.timestamps.forEach((t, i) => {
        out.set(t, s.values[i] as number);
      });
    }
    return out;
  },
}));

describe('the gateway with --influx-api v2', () => {
  it('writes a device reading through /api/v2/write, with the registry and schema tags', async () => {
    const gw = await lab.startGateway({
      influxUrl: vm.url,
      devices: [{ id: 'v2-ox-1', type: 'pulse-oximeter', site: 'odense', subject: 'p-042' }],
      config: { influx: { api: 'v2', org: 'lab', bucket: 'livinglab', token: 'unused' } },
    });
    const client = await connectDevice(gw.mqttUrl, 'v2-ox-1');
    const ts = new Date(Date.now() - 5000);
    await client.publishAsync(
      'lab/odense/pulse-oximeter/v2-ox-1/telemetry',
      JSON.stringify({ ts: ts.toISOString(), spo2: 96, pulse: 64, probe: 'ear' }),
      { qos: 1 },
    );
    const idle = await gw.app.drain.idle(10_000);
    if (!idle) console.log(JSON.stringify(gw.logLines().filter((l) => (l.level as number) >= 40)));
    expect(idle).toBe(true);
    const series = await vm.exportSeries('pulse_oximeter_spo2{device_id="v2-ox-1"}');
    expect(series).toEqual([
      {
        metric: expect.objectContaining({
          __name__: 'pulse_oximeter_spo2',
          device_id: 'v2-ox-1',
          device_type: 'pulse-oximeter',
          site: 'odense',
          subject: 'p-042',
          probe: 'ear',
          schema_version: '1',
        }),
        values: [96],
        timestamps: [ts.getTime()],
      },
    ]);
    await client.endAsync();
    await gw.stop();
  });
});
