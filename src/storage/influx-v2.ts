// Writer for the InfluxDB 2.x API (/api/v2/write) through @influxdata/influxdb-client, used strictly
// as a transport: maxRetries 0 and a fresh WriteApi per batch, because its own retry buffer lives
// in memory, drops the oldest lines when full and discards the rest on close()
// (docs/architecture.md, Pitfalls). Retries
// are the drain's, against the spool. Needs InfluxDB ≥ 1.8 or 2.x (Debian's 1.6 answers 404).
import { HttpError, InfluxDB, setLogger } from '@influxdata/influxdb-client';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { classifyWriteResponse } from './write-response.js';
import type { WriteResult, Writer } from './writer.js';

export interface InfluxV2Options {
  url: string;
  org: string;
  bucket: string;
  token: string;
  timeoutMs?: number;
  log: Logger;
}

export function createInfluxV2Writer(opts: InfluxV2Options): Writer {
  const client = new InfluxDB({ url: opts.url, token: opts.token, timeout: opts.timeoutMs ?? 30_000 });
  // The library logs failed writes to the console; ours are classified and logged by the drain.
  setLogger({
    error: (message) => opts.log.debug({ library: '@influxdata/influxdb-client' }, message),
    warn: (message) => opts.log.debug({ library: '@influxdata/influxdb-client' }, message),
  });
  const writeOnce = async (lines: readonly string[]): Promise<WriteResult> => {
    const api = client.getWriteApi(opts.org, opts.bucket, 'ns', {
      maxRetries: 0,
      batchSize: lines.length + 1,
      flushInterval: 0,
      maxBufferLines: lines.length + 1,
      gzipThreshold: 64 * 1024,
    });
    try {
      api.writeRecords(lines as string[]);
      await api.flush();
      return { ok: true };
    } catch (err) {
      if (err instanceof HttpError) {
        const retryAfter = err.headers?.['retry-after'];
        return classifyWriteResponse(
          err.statusCode,
          err.body ?? err.message,
          Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null),
        );
      }
      return { ok: false, kind: 'retry', message: (err as Error).message };
    }
  };
  return {
    name: 'influx-v2',
    async start() {
      const missing = [
        ['org', opts.org, '--influx-org'],
        ['bucket', opts.bucket, '--influx-bucket'],
        ['token', opts.token, '--influx-token or LIVINGLAB_INFLUX_TOKEN'],
      ].filter(([, value]) => !value);
      if (missing.length > 0) {
        throw new GatewayError(
          'LL_CONFIG_INVALID',
          `the InfluxDB v2 writer is missing its ${missing.map(([name, , option]) => `${name} (${option})`).join(', ')}`,
        );
      }
      try {
        const res = await fetch(new URL('/ping', opts.url), { signal: AbortSignal.timeout(5000) });
        if (res.status >= 500) throw new Error(`HTTP ${res.status}`);
      } catch (err) {
        throw new GatewayError(
          'LL_INFLUX_UNAVAILABLE',
          `InfluxDB at ${opts.url}: ${(err as Error).message}; is it running? (--influx-url)`,
          {
            cause: err,
          },
        );
      }
    },
    write: writeOnce,
    async ping() {
      try {
        const res = await fetch(new URL('/ping', opts.url), { signal: AbortSignal.timeout(2000) });
        return res.status < 500;
      } catch {
        return false;
      }
    },
    async stop() {},
  };
}
