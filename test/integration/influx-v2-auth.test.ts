// Issue 15, untested path 3: the InfluxDB v2 writer's credentials. Debian has no InfluxDB 2 server
// and victoria-metrics (test/helpers/victoria.ts) accepts any token on /api/v2/write, so the endpoint
// that checks the token is a small HTTP server here, answering as InfluxDB 2 does: 401 for a wrong
// token, 404 for an unknown bucket. Missing org, bucket or token are refused at start-up.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createWriter } from '../../src/storage/from-config.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice, eventually } from '../helpers/mqtt.js';

const TOKEN = 'right-token';
const OX = { id: 'v2a-ox-1', type: 'pulse-oximeter', site: 'odense', subject: 'p-201' };
const lab = useLab();

/** An /api/v2/write that checks `Authorization: Token …`, the org and the bucket, and keeps what it accepted. */
async function startCheckingEndpoint() {
  const accepted: string[] = [];
  const refused: number[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/ping') return res.writeHead(204).end();
      // The gateway's read check at start (GET /query) is not the writer's business here.
      if (url.pathname !== '/api/v2/write') return res.writeHead(404).end();
      const answer = (status: number, code: string, message: string) => {
        if (status !== 204) refused.push(status);
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ code, message }));
      };
      if (req.headers.authorization !== `Token ${TOKEN}`)
        return answer(401, 'unauthorized', 'unauthorized access');
      if (url.searchParams.get('org') !== 'lab' || url.searchParams.get('bucket') !== 'livinglab')
        return answer(404, 'not found', `bucket "${url.searchParams.get('bucket')}" not found`);
      accepted.push(Buffer.concat(chunks).toString());
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, accepted, refused };
}

const v2 = (influx: Record<string, string>) => ({
  influx: { api: 'v2', org: 'lab', bucket: 'livinglab', ...influx },
  // A refused reading stays in the spool: stop without giving the drain time to deliver it.
  shutdownTimeout: '100ms',
});

describe('the InfluxDB v2 writer refuses to start without its credentials', () => {
  it.each([
    ['org', { org: '' }, /its org \(--influx-org\)$/],
    ['bucket', { bucket: '' }, /its bucket \(--influx-bucket\)$/],
    ['token', { token: '' }, /its token \(--influx-token or LIVINGLAB_INFLUX_TOKEN\)$/],
  ])('without its %s: LL_CONFIG_INVALID naming the option', async (_name, change, message) => {
    const endpoint = await startCheckingEndpoint();
    const config = loadConfig({ flags: v2({ url: endpoint.url, token: TOKEN, ...change }) });
    const writer = createWriter(config, createLogger({ level: 'silent' }));
    await expect(writer.start()).rejects.toMatchObject({ code: 'LL_CONFIG_INVALID', message });
  });
});

/** A gateway writing through the checking endpoint with `change` applied, after one acknowledged reading. */
async function publishThrough(change: Record<string, string>) {
  const endpoint = await startCheckingEndpoint();
  const gw = await lab.startGateway({ devices: [OX], influxUrl: endpoint.url, config: v2(change) });
  const device = await connectDevice(gw.mqttUrl, OX.id);
  onTestFinished(() => void device.end(true));
  await device.publishAsync(
    'lab/odense/pulse-oximeter/v2a-ox-1/telemetry',
    JSON.stringify({ ts: new Date().toISOString(), spo2: 95, pulse: 66 }),
    { qos: 1 },
  );
  return { endpoint, gw };
}

describe('the gateway against an /api/v2/write that checks the token', () => {
  it.each([
    ['a wrong token', { token: 'wrong-token' }, 401, /^HTTP 401: unauthorized access$/],
    ['an unknown bucket', { token: TOKEN, bucket: 'nope' }, 404, /^HTTP 404: bucket "nope" not found$/],
  ])(
    'with %s: a clear write error, the reading kept in the spool, not rejected',
    async (_what, change, status, err) => {
      const { endpoint, gw } = await publishThrough(change);
      const failing = await eventually(
        async () =>
          gw
            .logLines()
            .find((l) => l.msg === 'database writes failing; readings stay in the spool and are retried'),
        (l) => l !== undefined,
      );
      expect(failing).toMatchObject({ writer: 'influx-v2', status });
      expect(failing?.err).toMatch(err);
      expect(endpoint.refused[0]).toBe(status);
      expect(endpoint.accepted).toEqual([]);
      expect(gw.app.drain.stats.healthy).toBe(false);
      expect(await gw.rejectsLog()).toEqual([]);
    },
  );

  it('with the right token, org and bucket: the reading is written', async () => {
    const { endpoint } = await publishThrough({ token: TOKEN });
    const [body] = await eventually(
      async () => endpoint.accepted,
      (a) => a.length > 0,
    );
    expect(body).toMatch(/^pulse_oximeter,device_id=v2a-ox-1,.* spo2=95i,pulse=66i \d+$/);
    expect(endpoint.refused).toEqual([]);
  });
});
