// The spool copy a backup takes: checkpoint first, segments after it, each cut to whole records.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeRecords, encodeRecord } from '../../src/storage/spool/index.js';
import { snapshotSpool } from '../../src/storage/spool/snapshot.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function spoolDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'll-snap-'));
  dirs.push(dir);
  return dir;
}

const record = (n: number) =>
  encodeRecord(Buffer.from(`pulse_oximeter spo2=${n} ${n}`), 1_700_000_000_000 + n);

describe('snapshotSpool', () => {
  it('hands over the checkpoint before any segment, and segments oldest first', async () => {
    const dir = await spoolDir();
    await writeFile(join(dir, '00000000000000000002.seg'), record(2));
    await writeFile(join(dir, '00000000000000000001.seg'), record(1));
    await writeFile(join(dir, 'checkpoint.json'), '{"segment":1,"offset":0}');
    await mkdir(join(dir, 'corrupt'));
    const names: string[] = [];
    const r = await snapshotSpool(dir, async (f) => {
      names.push(f.name);
    });
    expect(names).toEqual(['checkpoint.json', '00000000000000000001.seg', '00000000000000000002.seg']);
    expect(r).toEqual({ segments: 2, records: 2 });
  });

  it('cuts a segment caught in the middle of an append to its last whole record', async () => {
    const dir = await spoolDir();
    const whole = Buffer.concat([record(1), record(2)]);
    const torn = record(3).subarray(0, 10);
    await writeFile(join(dir, '00000000000000000007.seg'), Buffer.concat([whole, torn]));
    const copied: Buffer[] = [];
    await snapshotSpool(dir, async (f) => {
      copied.push(f.data);
    });
    expect(copied).toHaveLength(1);
    expect(copied[0]?.equals(whole)).toBe(true);
    expect(decodeRecords(copied[0] as Buffer, 7).records.map((x) => x.payload.toString())).toEqual([
      'pulse_oximeter spo2=1 1',
      'pulse_oximeter spo2=2 2',
    ]);
  });

  it('treats a missing spool folder as an empty spool', async () => {
    const dir = await spoolDir();
    expect(await snapshotSpool(join(dir, 'nope'), async () => undefined)).toEqual({
      segments: 0,
      records: 0,
    });
  });
});
