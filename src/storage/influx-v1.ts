// Writer for the InfluxDB 1.x HTTP API (also served by InfluxDB 2.x compatibility endpoints and 3.x).
// Admin calls (create database, ping) go through the npm `influx` package; writes POST our own line
// protocol to /write with fetch, because the drain needs the status code, Retry-After and the
// server's error text to classify failures, and node-influx would re-encode the points
// (docs/architecture.md, Pitfalls).
import { InfluxDB } from 'influx';
import { GatewayError } from '../errors.js';
import { classifyWriteResponse } from './write-response.js';
import type { Writer } from './writer.js';

export interface InfluxV1Options {
  url: string;
  db: string;
  username?: string;
  password?: string;
  timeoutMs?: number;
}

export function createInfluxClient(opts: InfluxV1Options): InfluxDB {
  const u = new URL(opts.url);
  return new InfluxDB({
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
    database: opts.db,
    ...(opts.username ? { username: opts.username, password: opts.password ?? '' } : {}),
  });
}

export function createInfluxV1Writer(opts: InfluxV1Options): Writer {
  const client = createInfluxClient(opts);
  const writeUrl = new URL('/write', opts.url);
  writeUrl.searchParams.set('db', opts.db);
  writeUrl.searchParams.set('precision', 'ns');
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
  if (opts.username) {
    headers.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64')}`;
  }
  const ensureDatabase = async () => {
    const names = await client.getDatabaseNames();
    if (!names.includes(opts.db)) await client.createDatabase(opts.db);
  };
  return {
    name: 'influx-v1',
    async start() {
      try {
        await ensureDatabase();
      } catch (err) {
        throw new GatewayError(
          'LL_INFLUX_UNAVAILABLE',
          `InfluxDB at ${opts.url} (database "${opts.db}"): ${(err as Error).message}; is influxd running? (--influx-url)`,
          { cause: err },
        );
      }
    },
    async write(lines) {
      try {
        const res = await fetch(writeUrl, {
          method: 'POST',
          headers,
          body: lines.join('\n'),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
        });
        const body = res.status === 204 ? '' : await res.text();
        const result = classifyWriteResponse(res.status, body, res.headers.get('retry-after'));
        // A database dropped or never created (InfluxDB answers 404): create it, then retry.
        if (res.status === 404 && /database not found/i.test(body))
          await ensureDatabase().catch(() => undefined);
        return result;
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        return {
          ok: false,
          kind: 'retry',
          message: `${(err as Error).message}${cause ? ` (${cause})` : ''}`,
        };
      }
    },
    async ping() {
      const hosts = await client.ping(2000).catch(() => []);
      return hosts.some((h) => h.online);
    },
    async stop() {},
  };
}
