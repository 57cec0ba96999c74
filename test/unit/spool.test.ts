import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, parseRetryAfter } from '../../src/storage/backoff.js';
import { toLine } from '../../src/storage/line-protocol.js';
import type { Position, QueuedRecord } from '../../src/storage/queue.js';
import { createSpool, decodeRecords, encodeRecord, SpoolFullError } from '../../src/storage/spool/index.js';
import { classifyWriteResponse } from '../../src/storage/write-response.js';
import { createDiskFaults } from '../helpers/disk-faults.js';

const log = pino({ level: 'silent' });
const dir = () => mkdtempSync(join(tmpdir(), 'll-spool-'));
const p = (s: string) => Buffer.from(s);
const texts = (rs: { payload: Buffer }[]) => rs.map((r) => r.payload.toString());

describe('spool records', () => {
  it('round-trip with their append time', () => {
    const buf = Buffer.concat([encodeRecord(p('a'), 1000), encodeRecord(p('bb'), 2000)]);
    const d = decodeRecords(buf, 7);
    expect(d).toMatchObject({ end: buf.length, corrupt: false });
    expect(d.records.map((r) => [r.payload.toString(), r.appendedAt, r.position])).toEqual([
      ['a', 1000, { segment: 7, offset: 17 }],
      ['bb', 2000, { segment: 7, offset: 35 }],
    ]);
  });
  it('stop at a torn record and at a flipped bit', () => {
    const one = encodeRecord(p('hello'), 1);
    const two = encodeRecord(p('world'), 2);
    expect(decodeRecords(Buffer.concat([one, two.subarray(0, 10)]), 1)).toMatchObject({
      end: one.length,
      corrupt: false,
    });
    const flipped = Buffer.from(two);
    flipped[20] = (flipped[20] as number) ^ 1;
    expect(decodeRecords(Buffer.concat([one, flipped]), 1)).toMatchObject({ end: one.length, corrupt: true });
  });
});

describe('spool', () => {
  it('hands out records in order and replays unconfirmed ones after a restart', async () => {
    const d = dir();
    const a = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await a.start();
    await a.append([p('r1'), p('r2')]);
    await a.append([p('r3')]);
    const first = await a.read(1 << 20);
    expect(texts(first)).toEqual(['r1', 'r2', 'r3']);
    await a.confirm((first[0] as QueuedRecord).position);
    expect(a.stats.unconfirmedRecords).toBe(2);
    await a.stop();
    const b = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect(await b.start()).toMatchObject({ records: 2, cutBytes: 0 });
    expect(texts(await b.read(1 << 20))).toEqual(['r2', 'r3']);
    await b.stop();
  });

  it('deletes a segment only when all of it is confirmed', async () => {
    const d = dir();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, segmentBytes: 64, log });
    await s.start();
    for (let i = 0; i < 10; i++) await s.append([p(`record-${i}-${'x'.repeat(30)}`)]);
    const segs = () => readdirSync(d).filter((n) => n.endsWith('.seg')).length;
    const before = segs();
    expect(before).toBeGreaterThan(3);
    const all = await s.read(1 << 20);
    await s.confirm((all[4] as QueuedRecord).position);
    expect(segs()).toBeLessThan(before);
    expect(segs()).toBeGreaterThan(1);
    await s.confirm((all[9] as QueuedRecord).position);
    expect(s.stats.unconfirmedRecords).toBe(0);
    await s.stop();
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect((await again.start()).records).toBe(0);
    await again.stop();
  });

  it('keeps accepting appends when two drain workers confirm whole segments at once', async () => {
    // Found by bench/e2e.ts at 50,000 readings/s: both confirms removed the same segment and the
    // spool lost the segment appends go to ("reading 'size' of undefined", no more PUBACKs).
    const d = dir();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, segmentBytes: 64, log });
    await s.start();
    for (let i = 0; i < 6; i++) await s.append([p(`record-${i}-${'x'.repeat(30)}`)]);
    const all = await s.read(1 << 20);
    await Promise.all([
      s.confirm((all[2] as QueuedRecord).position),
      s.confirm((all[4] as QueuedRecord).position),
    ]);
    await s.append([p('after the confirms')]);
    expect(texts(await s.read(1 << 20))).toEqual(['after the confirms']);
    await s.stop();
    // Nothing after the confirmed position is lost: both come back after a restart.
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect((await again.start()).records).toBe(2);
    expect(texts(await again.read(1 << 20))).toEqual([`record-5-${'x'.repeat(30)}`, 'after the confirms']);
    await again.stop();
  });

  it('survives overlapping checkpoint writes (slow disk, busy event loop)', async () => {
    // Found by bench/e2e.ts at 150,000 readings/s: a checkpoint write outlived the 1-s spacing,
    // the next one reused the .tmp file and its rename failed with ENOENT, killing a drain worker.
    const d = dir();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await s.start();
    for (let i = 0; i < 20; i++) await s.append([p(`r${i}`)]);
    const all = await s.read(1 << 20);
    let clock = Date.now();
    const now = vi.spyOn(Date, 'now').mockImplementation(() => (clock += 5000));
    try {
      await Promise.all(all.map((r) => s.confirm(r.position)));
    } finally {
      now.mockRestore();
    }
    await s.stop();
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect((await again.start()).records).toBe(0);
    await again.stop();
  });

  it('cuts a torn last record at start-up, keeps the bytes aside and replays the rest', async () => {
    const d = dir();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await s.start();
    await s.append([p('complete-1'), p('complete-2')]);
    await s.stop();
    const seg = readdirSync(d).find((n) => n.endsWith('.seg')) as string;
    appendFileSync(join(d, seg), encodeRecord(p('torn-record'), 3).subarray(0, 12));
    const size = statSync(join(d, seg)).size;
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect(await again.start()).toMatchObject({ records: 2, cutBytes: 12 });
    expect(statSync(join(d, seg)).size).toBe(size - 12);
    expect(readdirSync(join(d, 'corrupt'))).toHaveLength(1);
    expect(texts(await again.read(1 << 20))).toEqual(['complete-1', 'complete-2']);
    await again.stop();
  });

  it('cuts a record whose bytes were damaged, never replaying garbage', async () => {
    const d = dir();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await s.start();
    await s.append([p('good'), p('will-be-damaged')]);
    await s.stop();
    const seg = join(d, readdirSync(d).find((n) => n.endsWith('.seg')) as string);
    const bytes = readFileSync(seg);
    truncateSync(seg, bytes.length - 1);
    appendFileSync(seg, Buffer.from([bytes[bytes.length - 1] === 0x41 ? 0x42 : 0x41]));
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect((await again.start()).records).toBe(1);
    expect(texts(await again.read(1 << 20))).toEqual(['good']);
    await again.stop();
  });

  it('makes appends wait when full, and lets them in when confirmed records free space', async () => {
    const s = createSpool({ dir: dir(), maxBytes: 100, maxWaitingBytes: 60, log });
    await s.start();
    await s.append([p('x'.repeat(60))]);
    let done = false;
    const waiting = s.append([p('y'.repeat(30))]).then(() => {
      done = true;
    });
    // Wait for the append to be queued (the spool reports full), not for a fixed time.
    await vi.waitFor(() => expect(s.stats.full).toBe(true));
    // The waiting bytes are counted: 30 more would pass maxWaitingBytes.
    await expect(s.append([p('z'.repeat(30))])).rejects.toBeInstanceOf(SpoolFullError);
    expect(done).toBe(false);
    const [r] = await s.read(1000);
    await s.confirm((r as QueuedRecord).position);
    await waiting;
    expect(s.stats.full).toBe(false);
    expect(texts(await s.read(1000))).toEqual(['y'.repeat(30)]);
    await s.stop();
  });

  it('reports the age of the oldest unwritten record', async () => {
    const s = createSpool({ dir: dir(), maxBytes: 1 << 20, log });
    await s.start();
    const t0 = Date.now();
    await s.append([p('a')]);
    expect(s.stats.oldestUnconfirmedAt).toBeGreaterThanOrEqual(t0);
    const rs = await s.read(100);
    expect(s.stats.oldestUnconfirmedAt).toBeGreaterThanOrEqual(t0);
    await s.confirm((rs[0] as QueuedRecord).position);
    expect(s.stats.oldestUnconfirmedAt).toBeUndefined();
    await s.stop();
  });
});

describe('spool on a failing disk', () => {
  const segFiles = (d: string) => readdirSync(d).filter((n) => n.endsWith('.seg'));
  const fileBytes = (d: string) => segFiles(d).reduce((n, f) => n + statSync(join(d, f)).size, 0);
  const capture = () => {
    const lines: { msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { msg: string });
        cb();
      },
    });
    return { lines, log: pino({ level: 'info' }, sink) };
  };

  it('a read that fails part-way hands out what it read, and the next read resumes right after it', async () => {
    const d = dir();
    const faults = createDiskFaults();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, segmentBytes: 64, log, openFile: faults.openFile });
    await s.start();
    const all = Array.from({ length: 6 }, (_, i) => `record-${i}-${'x'.repeat(30)}`);
    for (const r of all) await s.append([p(r)]);
    expect(segFiles(d).length).toBeGreaterThanOrEqual(3);
    // The first chunk (segment) is read, the second fails.
    faults.failRead(1);
    const first = await s.read(1 << 20);
    expect(faults.injected.reads).toBe(1);
    expect(first.length).toBeGreaterThan(0);
    // A read that fails before anything is read says so, with nothing handed out.
    faults.failRead(0);
    await expect(s.read(1 << 20)).rejects.toMatchObject({ code: 'LL_SPOOL_READ_FAILED' });
    const rest = await s.read(1 << 20);
    expect([...texts(first), ...texts(rest)]).toEqual(all);
    await s.confirm((rest[rest.length - 1] as QueuedRecord).position);
    expect(s.stats).toMatchObject({ unconfirmedRecords: 0, bytes: 0 });
    await s.stop();
  });

  it('a write cut short by a full disk is cut back: nothing uncounted stays, later records are read and survive a restart', async () => {
    const d = dir();
    const faults = createDiskFaults();
    const { lines, log: logged } = capture();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log: logged, openFile: faults.openFile });
    await s.start();
    await s.append([p('acked-1')]);
    faults.shortWriteThenFull(10);
    await expect(s.append([p('refused-on-a-full-disk')])).rejects.toMatchObject({
      code: 'LL_SPOOL_WRITE_FAILED',
      message: expect.stringMatching(/ENOSPC.*not acknowledged/),
    });
    expect(faults.injected.writes).toBe(1);
    expect(fileBytes(d)).toBe(s.stats.diskBytes);
    await s.append([p('acked-2')]);
    expect(fileBytes(d)).toBe(s.stats.diskBytes);
    expect(s.stats).toMatchObject({ unconfirmedRecords: 2, writeErrors: 1, appendError: undefined });
    expect(texts(await s.read(1 << 20))).toEqual(['acked-1', 'acked-2']);
    expect(lines.map((l) => l.msg)).toContain(
      'spool write failed; segment cut back to its last complete record, readings not acknowledged',
    );
    await s.stop();
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect(await again.start()).toMatchObject({ records: 2, cutBytes: 0 });
    expect(texts(await again.read(1 << 20))).toEqual(['acked-1', 'acked-2']);
    await again.stop();
  });

  it('refuses appends while a failed write cannot be cut back, and takes them again once the cut works', async () => {
    const d = dir();
    const faults = createDiskFaults();
    const { lines, log: logged } = capture();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log: logged, openFile: faults.openFile });
    await s.start();
    await s.append([p('acked-1')]);
    faults.shortWriteThenFull(10);
    faults.failTruncates(2);
    await expect(s.append([p('refused-1')])).rejects.toMatchObject({ code: 'LL_SPOOL_CUT_FAILED' });
    expect(s.stats.appendError).toMatch(/could not be cut back to \d+ bytes .*not acknowledging readings/);
    expect(lines.map((l) => l.msg)).toContain(
      'spool write failed and the segment could not be cut back: not acknowledging readings',
    );
    // The cut is tried again with the next append, fails again: still refused, nothing written.
    await expect(s.append([p('refused-2')])).rejects.toMatchObject({ code: 'LL_SPOOL_CUT_FAILED' });
    expect(faults.injected.truncates).toBe(2);
    expect(s.stats.appendError).toBeDefined();
    // The disk works again: the cut succeeds and the append goes in.
    await s.append([p('acked-2')]);
    expect(s.stats.appendError).toBeUndefined();
    expect(fileBytes(d)).toBe(s.stats.diskBytes);
    expect(texts(await s.read(1 << 20))).toEqual(['acked-1', 'acked-2']);
    await s.stop();
    const again = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect(await again.start()).toMatchObject({ records: 2, cutBytes: 0 });
    expect(texts(await again.read(1 << 20))).toEqual(['acked-1', 'acked-2']);
    await again.stop();
  });

  it('syncs the checkpoint file before its rename and the spool folder after it', async () => {
    const d = dir();
    // Every fsync through the spool's file seam, by path, in order.
    const synced: string[] = [];
    const openFile: NonNullable<Parameters<typeof createSpool>[0]['openFile']> = async (
      path,
      flags,
      mode,
    ) => {
      const file = await open(path, flags, mode);
      return {
        write: (b, o, l) => file.write(b, o, l),
        read: (b, o, l, pos) => file.read(b, o, l, pos),
        truncate: (l) => file.truncate(l),
        sync: async () => {
          await file.sync();
          synced.push(path);
        },
        close: () => file.close(),
      };
    };
    const s = createSpool({ dir: d, maxBytes: 1 << 20, log, openFile });
    await s.start();
    await s.append([p('a')]);
    const [a] = await s.read(1 << 20);
    synced.length = 0;
    await s.confirm(a?.position as Position);
    expect(synced).toEqual([join(d, 'checkpoint.json.tmp'), d]);
    expect(JSON.parse(readFileSync(join(d, 'checkpoint.json'), 'utf8'))).toEqual(a?.position);
    await s.stop();
  });

  it('a new segment takes no record before its directory entry is synced', async () => {
    const d = dir();
    const faults = createDiskFaults();
    const s = createSpool({ dir: d, maxBytes: 1 << 20, segmentBytes: 64, log, openFile: faults.openFile });
    await s.start();
    const r = (i: number) => `record-${i}-${'x'.repeat(30)}`;
    await s.append([p(r(0))]);
    await s.append([p(r(1))]);
    // The next append opens segment 2; syncing the folder fails: not acknowledged.
    faults.failSyncs(1);
    await expect(s.append([p(r(2))])).rejects.toMatchObject({ code: 'LL_SPOOL_WRITE_FAILED' });
    const synced = faults.syncs;
    await s.append([p(r(3))]);
    // Acknowledged only after the folder sync that makes segment 2 survive a power cut.
    expect(faults.syncs).toBe(synced + 1);
    expect(texts(await s.read(1 << 20))).toEqual([r(0), r(1), r(3)]);
    await s.stop();
  });

  it('a confirm whose segment delete and checkpoint write fail still lets waiting appends in', async () => {
    const d = dir();
    const { lines, log: logged } = capture();
    const s = createSpool({ dir: d, maxBytes: 150, segmentBytes: 64, log: logged });
    await s.start();
    for (const c of ['a', 'b', 'c']) await s.append([p(c.repeat(30))]);
    let admitted = false;
    const waiting = s.append([p('d'.repeat(30))]).then(() => {
      admitted = true;
    });
    expect(s.stats.full).toBe(true);
    const [, b] = await s.read(1 << 20);
    // The disk refuses the delete of segment 1 and the checkpoint write.
    const [seg1] = segFiles(d).sort();
    renameSync(join(d, seg1 as string), join(d, 'moved-away'));
    mkdirSync(join(d, seg1 as string));
    mkdirSync(join(d, 'checkpoint.json.tmp'));
    await s.confirm((b as QueuedRecord).position).catch(() => undefined);
    await waiting;
    expect(admitted).toBe(true);
    expect(lines.map((l) => l.msg)).toContain('could not delete a written spool segment');
    await s.stop();
  });

  it('never reuses a segment id: readings appended after every segment was deleted survive a crash', async () => {
    const d = dir();
    const one = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await one.start();
    await one.append([p('r1')]);
    await one.stop();
    // Next run: r1 is written and confirmed, its segment deleted; the empty new one goes at stop.
    const two = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await two.start();
    const [r1] = await two.read(1 << 20);
    await two.confirm((r1 as QueuedRecord).position);
    await two.stop();
    expect(segFiles(d)).toEqual([]);
    // Next run, InfluxDB down: two readings acknowledged, then the process dies (no stop).
    const three = createSpool({ dir: d, maxBytes: 1 << 20, log });
    await three.start();
    await three.append([p('r2')]);
    await three.append([p('r3')]);
    const four = createSpool({ dir: d, maxBytes: 1 << 20, log });
    expect((await four.start()).records).toBe(2);
    expect(texts(await four.read(1 << 20))).toEqual(['r2', 'r3']);
    await four.stop();
  });
});

describe('line protocol', () => {
  it('writes integers with i, floats with a decimal point, escapes tags and strings', () => {
    expect(
      toLine({
        measurement: 'm x',
        tags: { room: 'living room,2', a: 'b=c' },
        fields: {
          n: { kind: 'integer', value: 97 },
          f: { kind: 'float', value: 97 },
          g: { kind: 'float', value: 0.5 },
          b: { kind: 'boolean', value: true },
          s: { kind: 'string', value: 'say "hi" \\' },
        },
        timestampNs: '1795341600000000123',
      }),
    ).toBe(
      'm\\ x,a=b\\=c,room=living\\ room\\,2 n=97i,f=97.0,g=0.5,b=true,s="say \\"hi\\" \\\\" 1795341600000000123',
    );
  });
});

describe('retry policy', () => {
  it('grows exponentially with jitter, is capped, and honours Retry-After', () => {
    const policy = { baseMs: 100, maxMs: 1000 };
    expect(backoffDelay(1, policy, undefined, () => 0)).toBe(50);
    expect(backoffDelay(1, policy, undefined, () => 1)).toBe(100);
    expect(backoffDelay(3, policy, undefined, () => 1)).toBe(400);
    expect(backoffDelay(20, policy, undefined, () => 1)).toBe(1000);
    expect(backoffDelay(1, policy, 5000, () => 0)).toBe(5000);
  });
  it('parses Retry-After seconds and dates', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
  it.each([
    [204, '', { ok: true }],
    [400, '{"error":"partial write: field type conflict"}', { ok: false, kind: 'bad-data' }],
    [413, '', { ok: false, kind: 'too-large' }],
    [404, '{"error":"database not found: \\"x\\""}', { ok: false, kind: 'retry' }],
    [401, '{"error":"authorization failed"}', { ok: false, kind: 'retry' }],
    [503, 'busy', { ok: false, kind: 'retry', retryAfterMs: 3000 }],
  ])('classifies HTTP %i', (status, body, expected) => {
    expect(classifyWriteResponse(status, body, status === 503 ? '3' : null)).toMatchObject(expected);
  });
});
