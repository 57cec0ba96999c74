import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AuditFile, createAuditLog, type ExportEnded, verifyAuditLog } from '../../src/query/audit.js';
import { sha256 } from '../../src/query/audit-chain.js';
import { withLock } from '../../src/query/audit-lock.js';

const KEY = randomBytes(32).toString('hex');
const entry = (rows: number): ExportEnded => ({
  at: '2026-11-29T10:00:00.000Z',
  event: 'export-ended',
  export: `e-${rows}`,
  researcher: 'r',
  project: 'falls',
  via: 'api',
  status: 'finished',
  rows,
});

function setUp() {
  const dir = mkdtempSync(join(tmpdir(), 'll-audit-'));
  // The head sits outside the data folder, as beside the registry.
  const opts = { file: join(dir, 'data', 'audit.ndjson'), headFile: join(dir, 'lab.audit-head.json') };
  const lines = () => readFileSync(opts.file, 'utf8').split('\n').filter(Boolean);
  const write = (ls: string[]) => writeFileSync(opts.file, `${ls.join('\n')}\n`);
  return { dir, opts, lines, write, verify: () => verifyAuditLog(opts.file, { ...opts, key: KEY }) };
}

/** What someone with the data folder but not the key can do: recompute every `prev` as SHA-256. */
function rechain(lines: string[]): string[] {
  let prev = '0'.repeat(64);
  return lines.map((l) => {
    const { mac: _m, seq: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
    const line = JSON.stringify({ ...rest, prev });
    prev = sha256(line);
    return line;
  });
}

describe('the legacy SHA-256 chain (no audit key)', () => {
  it('cannot tell a cut-off end or a rewritten entry with recomputed hashes: why the chain is now sealed', async () => {
    const t = setUp();
    const log = createAuditLog({ file: t.opts.file });
    for (const n of [1, 2, 3]) await log.append(entry(n));
    t.write(t.lines().slice(0, 2));
    expect(await verifyAuditLog(t.opts.file)).toEqual({ entries: 2, legacy: 2, notes: [] });
    t.write(rechain(t.lines().map((l) => l.replace('"rows":1', '"rows":100'))));
    expect(await verifyAuditLog(t.opts.file)).toEqual({ entries: 2, legacy: 2, notes: [] });
  });
});

describe('the sealed chain (HMAC-SHA256 under the audit key, head outside the data folder)', () => {
  async function sealed(n = 4) {
    const t = setUp();
    const log = createAuditLog({ ...t.opts, key: KEY });
    for (let i = 1; i <= n; i++) await log.append(entry(i));
    expect(await t.verify()).toEqual({ entries: n, legacy: 0, sealedFrom: 1, notes: [] });
    return t;
  }

  it('catches the last entry cut off (head count)', async () => {
    const t = await sealed();
    t.write(t.lines().slice(0, 3));
    expect(await t.verify()).toMatchObject({
      brokenAt: 4,
      reason: 'the log ends at entry 3 but the head records 4: the last 1 entries were cut off',
    });
  });

  it('catches an entry rewritten with the SHA-256 chain recomputed after it', async () => {
    const t = await sealed();
    t.write(rechain(t.lines().map((l) => l.replace('"rows":2', '"rows":200'))));
    expect(await t.verify()).toMatchObject({
      brokenAt: 5,
      reason: expect.stringContaining('entry 4 is not the one the head records'),
    });
    // Keeping the MAC fields does not help either.
    const u = await sealed();
    u.write(u.lines().map((l) => l.replace('"rows":2', '"rows":200')));
    expect(await u.verify()).toMatchObject({
      brokenAt: 2,
      reason: expect.stringContaining('MAC does not match'),
    });
  });

  it('catches a deleted and an inserted entry in the middle', async () => {
    const t = await sealed();
    const ls = t.lines();
    t.write([ls[0], ls[2], ls[3]] as string[]);
    expect(await t.verify()).toMatchObject({
      brokenAt: 2,
      reason: expect.stringContaining('is entry 3 where entry 2 belongs'),
    });
    t.write([ls[0], ls[1], ls[1], ls[2], ls[3]] as string[]);
    expect(await t.verify()).toMatchObject({
      brokenAt: 3,
      reason: expect.stringContaining('is entry 2 where entry 3 belongs'),
    });
  });

  it('fails without the head, and keeps the evidence of a cut when the next append comes', async () => {
    const t = await sealed();
    t.write(t.lines().slice(0, 2));
    await createAuditLog({ ...t.opts, key: KEY }).append(entry(5));
    expect(await t.verify()).toMatchObject({
      brokenAt: 3,
      reason: 'entries were missing when this entry was written: the head recorded 4 entries, the log had 2',
    });
    const u = await sealed();
    expect(await verifyAuditLog(u.opts.file, { key: KEY })).toMatchObject({
      reason: 'the audit head file is missing, so a cut-off end of the log cannot be ruled out',
    });
  });

  it('continues a legacy log: the legacy part verifies, and is protected by the first sealed entry', async () => {
    const t = setUp();
    const legacy = createAuditLog({ file: t.opts.file });
    for (const n of [1, 2, 3]) await legacy.append(entry(n));
    const log = createAuditLog({ ...t.opts, key: KEY });
    for (const n of [4, 5]) await log.append(entry(n));
    expect(await t.verify()).toEqual({ entries: 5, legacy: 3, sealedFrom: 4, notes: [] });
    expect(t.lines()[3]).toMatch(/"seq":4,"prev":"[0-9a-f]{64}","mac":"[0-9a-f]{64}"\}$/);
    const ls = t.lines();
    t.write([...rechain(ls.slice(0, 3).map((l) => l.replace('"rows":1', '"rows":100'))), ...ls.slice(3)]);
    expect(await t.verify()).toMatchObject({
      brokenAt: 4,
      reason: expect.stringContaining('does not follow'),
    });
    // A process without the key refuses to append to a sealed log rather than fork the chain.
    await expect(createAuditLog({ file: t.opts.file }).append(entry(6))).rejects.toMatchObject({
      code: 'LL_AUDIT_KEY_MISSING',
    });
  });

  it('orders appends of two writers (gateway and a command) into one chain', async () => {
    const t = setUp();
    const a = createAuditLog({ ...t.opts, key: KEY });
    const b = createAuditLog({ ...t.opts, key: KEY });
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).append(entry(i))));
    expect(await t.verify()).toEqual({ entries: 40, legacy: 0, sealedFrom: 1, notes: [] });
  });
});

describe('an append that fails half-way (ENOSPC)', () => {
  /** Writes the first `bytes` of the next append, then fails as a full disk does. */
  const fillsUp =
    (bytes: number) =>
    async (file: string): Promise<AuditFile> => {
      const h = await open(file, 'a', 0o600);
      return {
        append: async (data) => {
          await h.appendFile(data.subarray(0, bytes));
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
        sync: () => h.sync(),
        close: () => h.close(),
      };
    };

  it.each([
    ['sealed', KEY, { legacy: 0, sealedFrom: 1 }],
    ['legacy', undefined, { legacy: 3 }],
  ])(
    '%s: the next append starts on a new line and records the torn bytes; the chain stays intact',
    async (_n, key, intact) => {
      const t = setUp();
      const opts = { ...t.opts, ...(key ? { key } : {}) };
      await createAuditLog(opts).append(entry(1));
      await expect(createAuditLog({ ...opts, openFile: fillsUp(30) }).append(entry(2))).rejects.toThrow(
        'ENOSPC',
      );
      const torn = readFileSync(t.opts.file, 'utf8');
      expect(torn.endsWith('\n')).toBe(false);
      expect((await verifyAuditLog(t.opts.file, { ...opts })).notes).toEqual([
        'line 2 is an unfinished append (a full disk?), not part of the chain',
      ]);
      await createAuditLog(opts).append(entry(3));
      const ls = t.lines();
      expect(ls).toHaveLength(4);
      expect(ls[1]).toHaveLength(30);
      expect(JSON.parse(ls[2] as string)).toMatchObject({
        event: 'torn-line',
        bytes: 30,
        offset: torn.indexOf('\n') + 1,
      });
      expect(JSON.parse(ls[3] as string)).toMatchObject({ event: 'export-ended', rows: 3 });
      expect(await verifyAuditLog(t.opts.file, opts)).toEqual({ entries: 3, notes: [], ...intact });
    },
  );
});

describe('the audit lock', () => {
  it('takes over a lock left by a crashed process, and gives up on a live one with LL_AUDIT_LOCKED', async () => {
    const t = setUp();
    mkdirSync(dirname(t.opts.file), { recursive: true });
    const lock = `${t.opts.file}.lock`;
    writeFileSync(lock, '999999\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    await createAuditLog({ ...t.opts, key: KEY }).append(entry(1));
    expect(existsSync(lock)).toBe(false);
    expect(await t.verify()).toEqual({ entries: 1, legacy: 0, sealedFrom: 1, notes: [] });
    writeFileSync(lock, '999999\n');
    let ran = false;
    await expect(
      withLock(
        lock,
        async () => {
          ran = true;
        },
        { timeoutMs: 100 },
      ),
    ).rejects.toMatchObject({ code: 'LL_AUDIT_LOCKED' });
    expect(ran).toBe(false);
  });
});
