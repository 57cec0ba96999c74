import { mkdir, mkdtemp, open, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, expect, it, onTestFinished, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createRejectsLog, type RejectEntry, readRejects } from '../../src/storage/rejects-log.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const entry = (clientId: string): RejectEntry => ({
  receivedAt: '2026-11-22T10:00:00.000Z',
  clientId,
  topic: `lab/odense/pulse-oximeter/${clientId}/telemetry`,
  rejections: [{ reason: 'json', errors: [{ path: '', message: 'not valid JSON' }] }],
  payload: Buffer.from('x'.repeat(300)),
});

it("stores a device's rejections up to its daily budget, then counts them, warns once, and starts again the next day", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-rejects-'));
  dirs.push(dir);
  const warnings: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'warn',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n'))
          if (l) warnings.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  });
  let now = new Date('2026-11-22T23:59:00Z');
  const rejects = createRejectsLog({ dataDir: dir, maxBytesPerClientPerDay: 2000, log, now: () => now });
  await rejects.start();
  for (let i = 0; i < 10; i++) await rejects.append(entry('ox-1'));
  await rejects.append(entry('ox-2'));
  // InfluxDB refusals carry no client id and are never held back.
  for (let i = 0; i < 10; i++) await rejects.append(entry(''));
  const lines = async () =>
    (await readFile(rejects.file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).clientId as string);
  const perClient = (ids: string[]) => {
    const counts: Record<string, number> = {};
    for (const id of ids) counts[id] = (counts[id] ?? 0) + 1;
    return counts;
  };
  // Each line is 532 bytes: three fit in 2,000.
  expect(perClient(await lines())).toEqual({ 'ox-1': 3, 'ox-2': 1, '': 10 });
  expect(rejects.notLogged).toBe(7);
  expect(warnings.filter((w) => w.clientId === 'ox-1')).toEqual([
    expect.objectContaining({ level: 40, limitBytes: 2000, day: '2026-11-22' }),
  ]);
  now = new Date('2026-11-23T00:01:00Z');
  await rejects.append(entry('ox-1'));
  expect(perClient(await lines())['ox-1']).toBe(4);
  await rejects.stop();
});

it("syncs a durable entry (the drain's refused points) to disk before the append resolves, and no other", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-rejects-'));
  dirs.push(dir);
  const probe = await open(join(dir, 'probe'), 'w');
  const handleProto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const synced = vi.spyOn(handleProto, 'datasync');
  try {
    const rejects = createRejectsLog({ dataDir: dir });
    await rejects.start();
    await rejects.append(entry('ox-1'));
    expect(synced).not.toHaveBeenCalled();
    await rejects.append({ ...entry(''), durable: true });
    expect(synced).toHaveBeenCalledTimes(1);
    await rejects.stop();
    expect((await readFile(rejects.file, 'utf8')).trim().split('\n')).toHaveLength(2);
  } finally {
    synced.mockRestore();
  }
});

it('reads back what it wrote, typed: device rejections and database refusals, binary payloads as base64', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-rejects-'));
  dirs.push(dir);
  const rejects = createRejectsLog({ dataDir: dir });
  await rejects.start();
  await rejects.append({ ...entry('ox-1'), rejectionCount: 3, reasons: { json: 2, time: 1 } });
  await rejects.append({
    receivedAt: '2026-11-22T10:00:01.000Z',
    clientId: '',
    topic: '',
    rejections: [{ reason: 'database', errors: [{ path: '', message: 'field type conflict' }] }],
    payload: Buffer.from([0xff, 0xfe]),
    durable: true,
  });
  await rejects.stop();
  const read = [];
  for await (const line of readRejects(rejects.file)) read.push(line);
  expect(read).toEqual([
    {
      receivedAt: '2026-11-22T10:00:00.000Z',
      clientId: 'ox-1',
      topic: 'lab/odense/pulse-oximeter/ox-1/telemetry',
      rejections: [{ reason: 'json', errors: [{ path: '', message: 'not valid JSON' }] }],
      rejectionCount: 3,
      reasons: { json: 2, time: 1 },
      payload: 'x'.repeat(300),
      payloadEncoding: 'utf8',
    },
    {
      receivedAt: '2026-11-22T10:00:01.000Z',
      clientId: '',
      topic: '',
      rejections: [{ reason: 'database', errors: [{ path: '', message: 'field type conflict' }] }],
      payload: Buffer.from([0xff, 0xfe]).toString('base64'),
      payloadEncoding: 'base64',
    },
  ]);
  // A log not written yet (no rejection so far) reads as empty, not as an error.
  const none = [];
  for await (const line of readRejects(join(dir, 'missing.ndjson'))) none.push(line);
  expect(none).toEqual([]);
});

it('keeps logging after a rotation whose rename failed, and rotates on the next run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-rejects-'));
  dirs.push(dir);
  const at = new Date('2026-11-22T03:15:00.000Z');
  // Only Date is faked, so the rotated name is known (whether or not the clock is injected).
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(at);
  onTestFinished(() => {
    vi.useRealTimers();
  });
  const rejects = createRejectsLog({ dataDir: dir, now: () => at });
  await rejects.start();
  await rejects.append(entry('ox-1'));
  // A non-empty folder where the rotated file should go: the rename fails (ENOTEMPTY/EISDIR).
  const target = join(dir, 'rejects-2026-11-22T03-15-00-000Z.ndjson');
  await mkdir(join(target, 'blocker'), { recursive: true });
  await expect(rejects.rotate()).rejects.toMatchObject({ syscall: 'rename' });
  await rejects.append(entry('ox-2'));
  const ids = async (file: string) => {
    const out: string[] = [];
    for await (const l of readRejects(file)) out.push(l.clientId);
    return out;
  };
  expect(await ids(rejects.file)).toEqual(['ox-1', 'ox-2']);
  await rm(target, { recursive: true });
  expect(await rejects.rotate()).toBe(target);
  await rejects.append(entry('ox-3'));
  expect(await ids(target)).toEqual(['ox-1', 'ox-2']);
  expect(await ids(rejects.file)).toEqual(['ox-3']);
  await rejects.stop();
});

it('reopens the log when it was removed or moved by hand: no line goes into a file nobody can see', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-rejects-'));
  dirs.push(dir);
  const rejects = createRejectsLog({ dataDir: dir });
  await rejects.start();
  await rejects.append(entry('ox-1'));
  await rm(rejects.file);
  await rejects.append(entry('ox-2'));
  await rename(rejects.file, join(dir, 'saved.ndjson'));
  await rejects.append(entry('ox-3'));
  // A rotation right after a removal by hand has nothing to move and no error.
  await rm(rejects.file);
  expect(await rejects.rotate()).toBeUndefined();
  await rejects.append(entry('ox-4'));
  await rejects.stop();
  const ids = async (file: string) => {
    const out: string[] = [];
    for await (const l of readRejects(file)) out.push(l.clientId);
    return out;
  };
  expect(await ids(join(dir, 'saved.ndjson'))).toEqual(['ox-2']);
  expect(await ids(rejects.file)).toEqual(['ox-4']);
  expect(rejects.count).toBe(4);
});
