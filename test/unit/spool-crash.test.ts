// Randomized crash recovery of the spool (seeded): append and confirm at random, then crash (the
// file seam goes dead mid-append) or stop, damage the folder at random (a torn tail, a segment cut
// or with a flipped byte at a random offset, a torn checkpoint), and start again. Each start must
// replay no garbage (every record is one that was appended, in append order) and lose no
// acknowledged, unconfirmed record outside a segment range the damage destroyed.
// A failure names its seed; SPOOL_CRASH_SEED=<n> replays that one case alone.
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { QueuedRecord } from '../../src/storage/queue.js';
import {
  createSpool,
  decodeRecords,
  encodeRecord,
  type Spool,
  type SpoolFile,
} from '../../src/storage/spool/index.js';
import { seeded } from '../helpers/seeded.js';

const log = pino({ level: 'silent' });
const CASES = Number(process.env.SPOOL_CRASH_CASES ?? 2000);
// tmpfs when there is one: every append is a synced write, and the logic, not the disk, is tested.
const ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

type Rng = () => number;
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

/** The spool's file seam over the real file system, with a power cut on cue. */
function crashableDisk() {
  const files = new Set<SpoolFile>();
  let dead = false;
  const check = () => {
    if (dead) throw Object.assign(new Error('EIO: power cut'), { code: 'EIO' });
  };
  return {
    async openFile(path: string, flags: number | string, mode?: number): Promise<SpoolFile> {
      check();
      const file = await open(path, flags, mode);
      files.add(file);
      return {
        write: async (b, o, l) => {
          check();
          return file.write(b, o, l);
        },
        read: async (b, o, l, p) => {
          check();
          return file.read(b, o, l, p);
        },
        truncate: async (l) => {
          check();
          return file.truncate(l);
        },
        sync: async () => {
          check();
          return file.sync();
        },
        close: async () => {
          if (dead) return;
          files.delete(file);
          await file.close();
        },
      };
    },
    cut() {
      dead = true;
    },
    /** After a cut: the handles the dead spool left open. */
    async closeAll() {
      for (const f of files) await f.close().catch(() => undefined);
      files.clear();
    },
  };
}

interface Model {
  /** Every payload ever appended, by id (ids grow with append order). */
  payloads: Map<number, string>;
  /** Acknowledged and not confirmed: each must come back after a restart. */
  live: Set<number>;
  nextId: number;
}

const idOf = (r: QueuedRecord) => Number(r.payload.toString().split(':')[0]);
const newPayload = (m: Model, rng: Rng) => {
  const id = m.nextId++;
  const text = `${id}:${'x'.repeat(int(rng, 0, 24))}`;
  m.payloads.set(id, text);
  return id;
};

async function readAll(spool: Spool): Promise<QueuedRecord[]> {
  const out: QueuedRecord[] = [];
  for (let batch = await spool.read(64); batch.length > 0; batch = await spool.read(64)) out.push(...batch);
  return out;
}

/** Appends 1-3 concurrent calls of 1-2 payloads; the acknowledged ones become live. */
async function appendSome(spool: Spool, m: Model, rng: Rng) {
  const calls = Array.from({ length: int(rng, 1, 3) }, () => {
    const ids = Array.from({ length: int(rng, 1, 2) }, () => newPayload(m, rng));
    const done = spool.append(ids.map((id) => Buffer.from(m.payloads.get(id) as string)));
    return done.then(() => {
      for (const id of ids) m.live.add(id);
    });
  });
  return Promise.allSettled(calls);
}

/** Reads some records and confirms a prefix of what was handed out, as the drain does: in order. */
async function confirmSome(spool: Spool, m: Model, rng: Rng, handed: QueuedRecord[]) {
  handed.push(...(await spool.read(int(rng, 1, 120))));
  if (handed.length === 0) return;
  const upTo = int(rng, 0, handed.length - 1);
  const confirmed = handed.splice(0, upTo + 1);
  await spool.confirm((confirmed[confirmed.length - 1] as QueuedRecord).position);
  for (const r of confirmed) m.live.delete(idOf(r));
}

/** Damages the stopped spool's folder; returns the ids whose bytes the damage destroyed. */
function damage(dir: string, m: Model, rng: Rng): Set<number> {
  const lost = new Set<number>();
  const segs = readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
  for (let n = int(rng, 0, 2); n > 0; n--) {
    const kind = rng();
    if (kind < 0.4 && segs.length > 0) {
      // A crash mid-append: part of a record that was never acknowledged after the last one.
      const id = newPayload(m, rng);
      const torn = encodeRecord(Buffer.from(m.payloads.get(id) as string), 1);
      appendFileSync(
        join(dir, segs[segs.length - 1] as string),
        torn.subarray(0, int(rng, 1, torn.length - 1)),
      );
    } else if (kind < 0.8 && segs.length > 0) {
      // The medium: the segment is cut, or a byte flips, at a random offset; records from there go.
      const name = segs[int(rng, 0, segs.length - 1)] as string;
      const path = join(dir, name);
      const bytes = readFileSync(path);
      if (bytes.length === 0) continue;
      const at = int(rng, 0, bytes.length - 1);
      for (const r of decodeRecords(bytes, 0).records) if (r.position.offset > at) lost.add(idOf(r));
      if (rng() < 0.5) truncateSync(path, at);
      else {
        bytes[at] = (bytes[at] as number) ^ int(rng, 1, 255);
        rmSync(path);
        appendFileSync(path, bytes);
      }
    } else if (existsSync(join(dir, 'checkpoint.json'))) {
      // A checkpoint torn by a crash (renamed before its data reached the disk).
      const cp = join(dir, 'checkpoint.json');
      truncateSync(cp, int(rng, 0, readFileSync(cp).length - 1));
    }
  }
  return lost;
}

/** Starts the spool again and checks what it replays against the model. */
async function restartAndCheck(
  dir: string,
  m: Model,
  lost: Set<number>,
  rng: Rng,
  disk: ReturnType<typeof crashableDisk>,
) {
  const spool = createSpool({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: int(rng, 60, 400),
    log,
    openFile: disk.openFile,
  });
  const started = await spool.start();
  const replay = await readAll(spool);
  const ids = replay.map(idOf);
  const replayed = new Set(ids);
  const bytes = replay.reduce((n, r) => n + r.payload.length + 16, 0);
  // Plain checks, one assertion per start: thousands of cases must stay fast.
  const problems = [
    ...replay
      .filter((r, i) => r.payload.toString() !== m.payloads.get(ids[i] as number))
      .map((r) => `garbage replayed: ${JSON.stringify(r.payload.toString())}`),
    ...ids.filter((id, i) => i > 0 && id <= (ids[i - 1] as number)).map((id) => `out of order: ${id}`),
    ...[...m.live].filter((id) => !lost.has(id) && !replayed.has(id)).map((id) => `lost: ${id}`),
    ...(started.records === replay.length
      ? []
      : [`start counted ${started.records}, replayed ${replay.length}`]),
    ...(spool.stats.unconfirmedRecords === replay.length
      ? []
      : [`stats: ${spool.stats.unconfirmedRecords} unconfirmed`]),
    ...(spool.stats.bytes === bytes ? [] : [`stats: ${spool.stats.bytes} bytes, expected ${bytes}`]),
  ];
  expect(problems, problems.join('; ')).toEqual([]);
  // Whatever is replayed is unconfirmed again; what the damage destroyed is gone for good.
  m.live = replayed;
  return { spool, handed: replay };
}

async function runCase(seed: number, clock: { now: number }) {
  const rng = seeded(seed);
  const dir = mkdtempSync(join(ROOT, 'll-spool-crash-'));
  const m: Model = { payloads: new Map(), live: new Set(), nextId: 1 };
  let lost = new Set<number>();
  try {
    for (let generation = 0; generation < 2; generation++) {
      const disk = crashableDisk();
      const { spool, handed } = await restartAndCheck(dir, m, lost, rng, disk);
      for (let ops = int(rng, 2, 6); ops > 0; ops--) {
        // Sometimes past the checkpoint spacing, so checkpoints land at random points too.
        clock.now += rng() < 0.5 ? 0 : 1500;
        if (rng() < 0.6) await appendSome(spool, m, rng);
        else await confirmSome(spool, m, rng, handed);
      }
      if (rng() < 0.3) await spool.stop();
      else {
        const inFlight = appendSome(spool, m, rng);
        for (let ticks = int(rng, 0, 4); ticks > 0; ticks--) await new Promise((r) => setImmediate(r));
        disk.cut();
        await inFlight;
        await disk.closeAll();
      }
      lost = damage(dir, m, rng);
    }
    const { spool } = await restartAndCheck(dir, m, lost, rng, crashableDisk());
    await spool.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('spool crash recovery, randomized (seeded)', () => {
  it(`replays no garbage and loses no acknowledged, unconfirmed record over ${CASES} crashes`, async () => {
    const only = process.env.SPOOL_CRASH_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: CASES }, (_, i) => i + 1);
    const clock = { now: Date.now() };
    const now = vi.spyOn(Date, 'now').mockImplementation(() => clock.now);
    try {
      for (const seed of seeds) {
        try {
          await runCase(seed, clock);
        } catch (err) {
          console.error(`spool crash case failed: seed ${seed} (replay with SPOOL_CRASH_SEED=${seed})`);
          throw new Error(`seed ${seed}: ${(err as Error).message}`, { cause: err });
        }
      }
    } finally {
      now.mockRestore();
    }
  }, 180_000);
});
