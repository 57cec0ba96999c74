// The liveness state file (src/jobs/liveness-state.ts): written at most once per interval however
// many readings arrive (an injected clock), replaced atomically, read back as it was written, and a
// torn or foreign file skipped with a warning.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLiveness } from '../../src/jobs/liveness.js';
import {
  createThrottledWriter,
  type DeviceLiveness,
  parseLivenessState,
  readLivenessState,
  serialiseLivenessState,
  type WriterClock,
  writeStateFile,
} from '../../src/jobs/liveness-state.js';
import { createLogger } from '../../src/log.js';
import type { Registry } from '../../src/registry/registry.js';
import type { Device } from '../../src/registry/types.js';

function capturingLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination: sink }), lines };
}

/** A clock moved by hand: timers fire only from advance(), in time order. */
function manualClock() {
  let t = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; run: () => void }>();
  const clock: WriterClock = {
    now: () => t,
    setTimeout(run, ms) {
      timers.set(++nextId, { at: t + ms, run });
      return nextId;
    },
    clearTimeout: (handle) => void timers.delete(handle as number),
  };
  const settle = () => new Promise((r) => setImmediate(r));
  return {
    clock,
    pending: () => timers.size,
    async advance(ms: number) {
      const until = t + ms;
      for (;;) {
        const due = [...timers.entries()]
          .filter(([, x]) => x.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        t = Math.max(t, due[1].at);
        due[1].run();
        await settle();
      }
      t = until;
      await settle();
    },
  };
}

function writerWith(clock: WriterClock, intervalMs = 5_000, fail = () => false) {
  const writes: { at: number; text: string }[] = [];
  let version = 0;
  const { log, lines } = capturingLog();
  const writer = createThrottledWriter({
    snapshot: () => `v${version}`,
    async write(text) {
      if (fail()) throw new Error('EIO: i/o error');
      writes.push({ at: clock.now(), text });
    },
    intervalMs,
    log,
    clock,
  });
  return { writer, writes, lines, bump: () => ++version };
}

describe('liveness state writer', () => {
  it('writes 10,000 devices at 1 Hz for 20 s at most once per 5 s, and the latest state each time', async () => {
    const m = manualClock();
    const { writer, writes, bump } = writerWith(m.clock);
    for (let second = 0; second < 20; second++) {
      for (let device = 0; device < 10_000; device++) {
        bump();
        writer.changed();
      }
      await m.advance(1_000);
    }
    // Leading write at 0, then one per interval: 0, 5, 10, 15 s (and 20 s is due at the edge).
    expect(writes.length).toBeGreaterThanOrEqual(4);
    expect(writes.length).toBeLessThanOrEqual(5);
    for (let i = 1; i < writes.length; i++)
      expect((writes[i]?.at ?? 0) - (writes[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(5_000);
    await writer.stop();
    expect(writes.at(-1)?.text).toBe('v200000');
  });

  it('writes a change after a quiet spell at once, and nothing while nothing changed', async () => {
    const m = manualClock();
    const { writer, writes, bump } = writerWith(m.clock);
    await m.advance(60_000);
    expect(writes).toEqual([]);
    bump();
    writer.changed();
    await m.advance(0);
    expect(writes).toEqual([{ at: 60_000, text: 'v1' }]);
    await m.advance(60_000);
    expect(writes).toHaveLength(1);
    expect(m.pending()).toBe(0);
  });

  it('writes what is pending at stop, and schedules nothing after', async () => {
    const m = manualClock();
    const { writer, writes, bump } = writerWith(m.clock);
    writer.changed();
    await m.advance(1_000);
    bump();
    writer.changed(); // due at 5 s
    await writer.stop();
    expect(writes.map((w) => [w.at, w.text])).toEqual([
      [0, 'v0'],
      [1_000, 'v1'],
    ]);
    writer.changed();
    await m.advance(10_000);
    expect(writes).toHaveLength(2);
    expect(m.pending()).toBe(0);
  });

  it('keeps a failed write pending and retries it at the next interval, warning once', async () => {
    const m = manualClock();
    let failing = true;
    const { writer, writes, lines } = writerWith(m.clock, 5_000, () => failing);
    writer.changed();
    await m.advance(12_000);
    expect(writes).toEqual([]);
    expect(lines.filter((l) => l.msg === 'liveness state could not be written; retrying')).toHaveLength(1);
    failing = false;
    await m.advance(5_000);
    expect(writes).toHaveLength(1);
    expect(lines.some((l) => l.msg === 'liveness state written again')).toBe(true);
  });
});

describe('liveness state file', () => {
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'll-liveness-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const state = new Map<string, DeviceLiveness>([
    [
      'ox-1',
      { lastSeen: Date.parse('2026-11-29T10:00:00.123Z'), silent: true, batteryLow: true, status: 'offline' },
    ],
    ['ox-2', { silent: false, batteryLow: false, status: 'online' }],
  ]);

  it('reads back what it wrote, atomically replaced with mode 0600 and no temporary file left', async () => {
    const dir = await tempDir();
    const file = join(dir, 'liveness.json');
    await writeStateFile(file)(serialiseLivenessState(state, Date.parse('2026-11-29T10:00:01Z')));
    const { log } = capturingLog();
    expect(await readLivenessState(file, log)).toEqual(state);
    expect(await readdir(dir)).toEqual(['liveness.json']);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({
      version: 1,
      devices: { 'ox-1': { lastSeen: '2026-11-29T10:00:00.123Z', silent: true, batteryLow: true } },
    });
  });

  it.each([
    ['torn', '{"version":1,"devices":{"ox-1":{"silent":tr'],
    ['empty', ''],
    ['not a state', '{"devices":[]}'],
  ])('skips a %s file with a warning naming it, and starts empty', async (_name, text) => {
    const dir = await tempDir();
    const file = join(dir, 'liveness.json');
    await writeFile(file, text);
    const { log, lines } = capturingLog();
    expect(await readLivenessState(file, log)).toEqual(new Map());
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, file, msg: 'liveness state unreadable: starting without it' }),
    ]);
  });

  it('leaves out an entry that does not parse and keeps the rest', () => {
    const text = JSON.stringify({
      version: 1,
      devices: { good: { silent: true }, bad: { lastSeen: 'yesterday' }, odd: { status: 'sleeping' } },
    });
    expect(parseLivenessState(text)).toEqual(new Map([['good', { silent: true, batteryLow: false }]]));
  });

  it('removes temporary files a crash left behind; no file at all is an empty state without a warning', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '.liveness.json.0123456789ab.tmp'), '{"version":1,');
    await writeFile(join(dir, 'liveness-notes.txt'), 'mine');
    const { log, lines } = capturingLog();
    expect(await readLivenessState(join(dir, 'liveness.json'), log)).toEqual(new Map());
    expect(lines).toEqual([]);
    expect(await readdir(dir)).toEqual(['liveness-notes.txt']);
  });
});

describe('liveness restarted on its state file', () => {
  const device = (id: string, interval?: string): Device =>
    ({ id, type: 'room-climate', site: 'lab', enabled: true, ...(interval ? { interval } : {}) }) as Device;
  const registryOf = (devices: Device[]) =>
    ({ current: () => ({ devices: new Map(devices.map((d) => [d.id, d])) }) }) as unknown as Registry;

  async function livenessIn(dataDir: string, devices: Device[], clock: { t: number }) {
    const statuses: string[] = [];
    const liveness = createLiveness({
      registry: registryOf(devices),
      dataDir,
      log: createLogger({ level: 'silent' }),
      publishStatus: async (d, s) => void statuses.push(`${d.id}:${s}`),
      now: () => clock.t,
      writerClock: manualClock().clock,
    });
    await liveness.start();
    return { liveness, statuses };
  }

  it('does not count the time the gateway was down against a device, and puts back its status as offline', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'll-liveness-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const devices = [device('d1', '1m'), device('gone', '1m')];
    const clock = { t: Date.parse('2026-11-29T10:00:00Z') };
    const before = await livenessIn(dataDir, devices, clock);
    before.liveness.observe('d1');
    before.liveness.session(devices[0] as Device, 'connected');
    before.liveness.observeBattery('d1', 10);
    await before.liveness.stop();

    clock.t += 3_600_000; // an hour down
    const after = await livenessIn(dataDir, [devices[0] as Device], clock);
    expect(after.liveness.lastSeen('d1')).toBe(Date.parse('2026-11-29T10:00:00Z'));
    expect(after.liveness.batteryLow.has('d1')).toBe(true);
    await after.liveness.restoreStatuses();
    expect(after.statuses).toEqual(['d1:offline']); // not connected yet, whatever it was before
    clock.t += 170_000;
    await after.liveness.check();
    expect(after.liveness.silent.size).toBe(0);
    clock.t += 20_000;
    await after.liveness.check();
    expect([...after.liveness.silent]).toEqual(['d1']);
  });

  it('a device last seen "in the future" (saved while the clock was a year ahead) is judged silent three intervals from now', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'll-liveness-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const clock = { t: Date.parse('2026-11-29T10:00:00Z') };
    const ahead = new Map([
      ['d1', { lastSeen: clock.t + 365 * 86_400_000, silent: false, batteryLow: false }],
    ]);
    await writeFile(join(dataDir, 'liveness.json'), serialiseLivenessState(ahead, clock.t));
    const { liveness } = await livenessIn(dataDir, [device('d1', '1m')], clock);
    await liveness.check();
    expect(liveness.lastSeen('d1')).toBe(clock.t);
    clock.t += 190_000;
    await liveness.check();
    expect([...liveness.silent]).toEqual(['d1']);
    expect(liveness.transitions.offline).toBe(1);
  });
});
