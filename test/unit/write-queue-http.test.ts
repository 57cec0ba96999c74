// Untested path 10 of issue 15 (the write queue): the real InfluxDB 1.x writer and drain, over the
// real spool, against a small local HTTP server posing as InfluxDB's /write, because influxd cannot
// be made to answer 413 or Retry-After. Checks the split on 413, the wait Retry-After asks for, and
// that with several writes in flight nothing is confirmed before every earlier write succeeded.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDrain, type Drain } from '../../src/storage/drain.js';
import { createInfluxV1Writer } from '../../src/storage/influx-v1.js';
import type { RecordQueue } from '../../src/storage/queue.js';
import { createRejectsLog } from '../../src/storage/rejects-log.js';
import { createSpool } from '../../src/storage/spool/index.js';

const log = pino({ level: 'silent' });
const line = (i: number) => `m v=${i}i ${i}`;

type Handler = (lines: string[], res: ServerResponse, call: number) => void;

/** A fake InfluxDB /write: `handle` answers each request; the lines and arrival times are kept. */
async function fakeWrite(handle: Handler) {
  const requests: { at: number; lines: string[] }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const lines = body.split('\n').filter(Boolean);
      requests.push({ at: Date.now(), lines });
      handle(lines, res, requests.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** The real spool, writer and drain against `url`; `wrap` may watch the queue. */
async function drainTo(
  url: string,
  opts: { batchSize: number; concurrency: number },
  wrap?: (q: RecordQueue) => RecordQueue,
) {
  const dir = await mkdtemp(join(tmpdir(), 'll-wq-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const spool = createSpool({ dir: join(dir, 'spool'), maxBytes: 1 << 20, log });
  await spool.start();
  const rejects = createRejectsLog({ dataDir: dir });
  await rejects.start();
  const drain: Drain = createDrain({
    queue: wrap ? wrap(spool) : spool,
    writer: createInfluxV1Writer({ url, db: 'lab' }),
    rejects,
    log,
    ...opts,
    flushIntervalMs: 20,
    backoff: { baseMs: 5, maxMs: 200 },
  });
  onTestFinished(async () => {
    await drain.stop(1000);
    await spool.stop();
    await rejects.stop();
  });
  return { spool, drain, rejects };
}

const stored = (requests: { lines: string[] }[], ok: (r: { lines: string[] }) => boolean) =>
  requests.filter(ok).flatMap((r) => r.lines);

describe('write queue over HTTP', () => {
  it('splits a batch InfluxDB refuses as too large (413) until every line is stored, none rejected', async () => {
    const accepted = (r: { lines: string[] }) => r.lines.length <= 2;
    const influx = await fakeWrite((lines, res) => {
      res.writeHead(accepted({ lines }) ? 204 : 413, { 'content-type': 'application/json' });
      res.end(accepted({ lines }) ? undefined : JSON.stringify({ error: 'Request Entity Too Large' }));
    });
    const { spool, drain, rejects } = await drainTo(influx.url, { batchSize: 8, concurrency: 1 });
    drain.start();
    await spool.append([0, 1, 2, 3, 4, 5, 6, 7].map((i) => Buffer.from(line(i))));
    expect(await drain.idle(10_000)).toBe(true);
    expect(influx.requests[0]?.lines.length).toBeGreaterThan(2);
    expect(stored(influx.requests, accepted).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(line).sort());
    expect(rejects.count).toBe(0);
    expect(drain.stats).toMatchObject({ pointsWritten: 8, pointsRejected: 0 });
  });

  it('waits as long as Retry-After asks before sending the batch again', async () => {
    const influx = await fakeWrite((_lines, res, call) => {
      if (call === 1) res.writeHead(503, { 'retry-after': '1' }).end('{"error":"busy"}');
      else res.writeHead(204).end();
    });
    const { spool, drain } = await drainTo(influx.url, { batchSize: 4, concurrency: 1 });
    drain.start();
    await spool.append([Buffer.from(line(1))]);
    expect(await drain.idle(10_000)).toBe(true);
    const [first, second] = influx.requests;
    expect(second?.lines).toEqual([line(1)]);
    // The backoff alone would have retried after at most 5 ms.
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(drain.stats.writeRetries).toBe(1);
  });

  it('with several writes in flight, confirms nothing past a write that has not succeeded yet', async () => {
    let releaseFirst: () => void = () => undefined;
    const answered = new Set<string>();
    const influx = await fakeWrite((lines, res, call) => {
      const answer = () => {
        for (const l of lines) answered.add(l);
        res.writeHead(204).end();
      };
      if (call === 1) releaseFirst = answer;
      else answer();
    });
    const violations: string[] = [];
    const confirmed: number[] = [];
    const { spool, drain } = await drainTo(influx.url, { batchSize: 2, concurrency: 3 }, (q) => ({
      ...q,
      get stats() {
        return q.stats;
      },
      append: (p) => q.append(p),
      read: (n) => q.read(n),
      waitForData: (ms) => q.waitForData(ms),
      async confirm(position) {
        confirmed.push(position.offset);
        // The first batch (records 0 and 1) is held: no confirm may come before it is answered.
        if (!answered.has(line(0))) violations.push(`confirmed ${JSON.stringify(position)} early`);
        return q.confirm(position);
      },
    }));
    drain.start();
    await spool.append([Buffer.from(line(0)), Buffer.from(line(1))]);
    await waitFor(() => influx.requests.length === 1);
    await spool.append([2, 3, 4, 5].map((i) => Buffer.from(line(i))));
    // The later batches are written (and would be confirmed: that follows in the same tick) while
    // the first is still in flight.
    await waitFor(() => drain.stats.batchesWritten >= 2);
    expect(answered.has(line(0))).toBe(false);
    expect(violations).toEqual([]);
    expect(confirmed).toEqual([]);
    releaseFirst();
    expect(await drain.idle(10_000)).toBe(true);
    expect(violations).toEqual([]);
    expect(confirmed.length).toBeGreaterThan(0);
    expect(spool.stats.bytes).toBe(0);
  });
});

async function waitFor(probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
