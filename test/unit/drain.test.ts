// The drain against the real spool on a real (fault-injected) file system. The Writer is a local
// recorder (the InfluxDB writers have their own suite against influxd); every test checks the one
// invariant that matters: each position the drain confirms covers only records it has written.
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createDrain } from '../../src/storage/drain.js';
import type { Position, QueuedRecord, RecordQueue } from '../../src/storage/queue.js';
import { createRejectsLog, type RejectsLog } from '../../src/storage/rejects-log.js';
import { createSpool, type Spool } from '../../src/storage/spool/index.js';
import type { WriteResult, Writer } from '../../src/storage/writer.js';
import { createDiskFaults } from '../helpers/disk-faults.js';
import { seeded } from '../helpers/seeded.js';

const log = pino({ level: 'silent' });
const dir = () => mkdtempSync(join(tmpdir(), 'll-drain-'));
const atOrBefore = (p: Position, q: Position) =>
  p.segment < q.segment || (p.segment === q.segment && p.offset <= q.offset);

/** A writer that records what it was given; `answer` decides each call's fate and timing. */
function recordingWriter(
  answer?: (lines: readonly string[], call: number) => Promise<WriteResult | undefined>,
) {
  const written = new Set<string>();
  let calls = 0;
  const writer: Writer & { written: Set<string>; readonly calls: number } = {
    name: 'recorder',
    written,
    get calls() {
      return calls;
    },
    start: async () => undefined,
    ping: async () => true,
    stop: async () => undefined,
    async write(lines) {
      const result = (await answer?.(lines, ++calls)) ?? { ok: true };
      if (result.ok) for (const l of lines) written.add(l);
      return result;
    },
  };
  return writer;
}

/** The real spool, watched: every record handed out, every confirm checked against what was written. */
function watched(spool: Spool, written: Set<string>) {
  const handedOut: QueuedRecord[] = [];
  const violations: string[] = [];
  const queue: RecordQueue = {
    get stats() {
      return spool.stats;
    },
    append: (payloads) => spool.append(payloads),
    waitForData: (ms) => spool.waitForData(ms),
    async read(maxBytes) {
      const records = await spool.read(maxBytes);
      handedOut.push(...records);
      return records;
    },
    confirm(position) {
      for (const r of handedOut) {
        if (!atOrBefore(r.position, position)) continue;
        for (const line of r.payload.toString().split('\n'))
          if (!written.has(line))
            violations.push(`${line} confirmed at ${JSON.stringify(position)} unwritten`);
      }
      return spool.confirm(position);
    },
  };
  return { queue, handedOut, violations };
}

const until = async (probe: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const segBytesOnDisk = (d: string) =>
  readdirSync(d)
    .filter((n) => n.endsWith('.seg'))
    .reduce((n, f) => n + statSync(join(d, f)).size, 0);

async function startRejects(): Promise<RejectsLog> {
  const rejects = createRejectsLog({ dataDir: dir() });
  await rejects.start();
  return rejects;
}

describe('drain on a failing disk', () => {
  it('a failed spool read while one worker holds a partial batch and the other a batch in flight: nothing is confirmed unwritten, both workers keep running', async () => {
    const d = dir();
    const faults = createDiskFaults();
    const spool = createSpool({ dir: d, maxBytes: 1 << 20, log, openFile: faults.openFile });
    await spool.start();
    let release: () => void = () => undefined;
    const gate = new Promise<undefined>((r) => {
      release = () => r(undefined);
    });
    // The first write (records 0-3) hangs until released: that worker holds its batch in flight.
    const writer = recordingWriter((_lines, call) => (call === 1 ? gate : Promise.resolve(undefined)));
    const { queue, handedOut, violations } = watched(spool, writer.written);
    const rejects = await startRejects();
    const drain = createDrain({
      queue,
      writer,
      rejects,
      log,
      batchSize: 4,
      flushIntervalMs: 300,
      concurrency: 2,
      backoff: { baseMs: 5, maxMs: 20 },
    });
    const line = (i: number) => `m v=${i}i ${i}`;
    drain.start();
    await spool.append([0, 1, 2, 3].map((i) => Buffer.from(line(i))));
    await until(() => writer.calls === 1);
    // The other worker takes records 4 and 5 and waits for more to fill its batch...
    await spool.append([Buffer.from(line(4)), Buffer.from(line(5))]);
    await until(() => handedOut.length === 6);
    // ...and its next read fails.
    faults.failRead(0);
    await spool.append([Buffer.from(line(6))]);
    await until(() => faults.injected.reads === 1);
    release();
    expect(await drain.idle(5000)).toBe(true);
    expect(violations).toEqual([]);
    expect([...writer.written].sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map(line));
    expect(drain.stats).toMatchObject({ workers: 2, readErrors: 1, pointsWritten: 7 });
    await drain.stop(1000);
    expect(drain.stats.workers).toBe(0);
    await spool.stop();
    await rejects.stop();
  });

  it('a rejects log that fails to take a bad point is retried; the batch is confirmed only once it is there', async () => {
    const spool = createSpool({ dir: dir(), maxBytes: 1 << 20, log });
    await spool.start();
    const writer = recordingWriter(async (lines) =>
      lines.some((l) => l.includes('bad'))
        ? { ok: false, kind: 'bad-data', status: 400, message: 'field type conflict' }
        : undefined,
    );
    const { queue, violations } = watched(spool, writer.written);
    const real = await startRejects();
    let failures = 2;
    const appended: { durable?: boolean }[] = [];
    const rejects: RejectsLog = {
      ...real,
      get count() {
        return real.count;
      },
      append(entry) {
        if (failures-- > 0)
          return Promise.reject(Object.assign(new Error('ENOSPC: no space'), { code: 'ENOSPC' }));
        appended.push(entry);
        return real.append(entry);
      },
    };
    const drain = createDrain({
      queue,
      writer,
      rejects,
      log,
      batchSize: 10,
      flushIntervalMs: 10,
      concurrency: 2,
      backoff: { baseMs: 5, maxMs: 20 },
    });
    drain.start();
    await spool.append([Buffer.from('m v=1i 1\nm bad="x" 2\nm v=3i 3')]);
    await spool.append([Buffer.from('m v=4i 4')]);
    // Written and rejected lines count as handled for the invariant.
    writer.written.add('m bad="x" 2');
    expect(await drain.idle(5000)).toBe(true);
    expect(violations).toEqual([]);
    expect(real.count).toBe(1);
    // Its spool record is deleted once the line is appended: the line must be synced first.
    expect(appended.map((e) => e.durable)).toEqual([true]);
    expect(drain.stats).toMatchObject({ workers: 2, pointsRejected: 1, pointsWritten: 3 });
    await drain.stop(1000);
    await spool.stop();
    await real.stop();
  });
});

describe('drain, randomized (seeded)', () => {
  it.each([1, 2, 3])(
    'seed %i: writers finishing out of order, frequent rotation, failing reads: every record at or before each confirmed position was written',
    async (seed) => {
      const rng = seeded(seed);
      const d = dir();
      const faults = createDiskFaults();
      const failing = new Set(Array.from({ length: 8 }, () => 2 + Math.floor(rng() * 60)));
      faults.failReadsWhen((n) => failing.has(n));
      const spool = createSpool({
        dir: d,
        maxBytes: 1 << 20,
        segmentBytes: 200,
        log,
        openFile: faults.openFile,
      });
      await spool.start();
      const delays = Array.from({ length: 2000 }, () => rng());
      const writer = recordingWriter(async (_lines, call) => {
        const r = delays[call % delays.length] as number;
        await new Promise((done) => setTimeout(done, Math.floor(r * 6)));
        return r < 0.1 ? { ok: false, kind: 'retry', message: 'injected 503', status: 503 } : undefined;
      });
      const { queue, violations } = watched(spool, writer.written);
      const rejects = await startRejects();
      const drain = createDrain({
        queue,
        writer,
        rejects,
        log,
        batchSize: 1 + Math.floor(rng() * 8),
        flushIntervalMs: 5,
        concurrency: 2,
        backoff: { baseMs: 1, maxMs: 5 },
      });
      drain.start();
      const all: string[] = [];
      for (let i = 0; i < 400; ) {
        const group: Buffer[] = [];
        for (let n = 1 + Math.floor(rng() * 4); n > 0 && i < 400; n--, i++) {
          const lines = Array.from(
            { length: 1 + Math.floor(rng() * 3) },
            (_, j) => `m,seed=${seed} v=${i}i ${i * 10 + j}`,
          );
          all.push(...lines);
          group.push(Buffer.from(lines.join('\n')));
        }
        await spool.append(group);
        if (rng() < 0.3) await new Promise((r) => setTimeout(r, Math.floor(rng() * 3)));
      }
      expect(await drain.idle(20_000)).toBe(true);
      expect(violations).toEqual([]);
      expect([...writer.written].sort()).toEqual([...all].sort());
      expect(faults.injected.reads).toBeGreaterThan(0);
      // A read that fails after its first chunk hands out what it has; the drain sees no error then.
      expect(drain.stats.workers).toBe(2);
      expect(drain.stats.readErrors).toBeLessThanOrEqual(faults.injected.reads);
      expect(segBytesOnDisk(d)).toBe(spool.stats.diskBytes);
      await drain.stop(1000);
      await spool.stop();
      await rejects.stop();
      const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
      expect((await again.start()).records).toBe(0);
      await again.stop();
    },
  );
});
