// The data-folder lock (src/storage/data-lock.ts) on a real file system: gateways that start at
// the same moment on one folder end with exactly one holder, and a released lock is free again.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { isGatewayError } from '../../src/errors.js';
import { type DataLock, lockDataDir } from '../../src/storage/data-lock.js';

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'll-lock-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

it('eight gateways locking one folder at once: exactly one holds it, the others are told who', async () => {
  const dir = await folder();
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => lockDataDir(dir)));
  const held = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  onTestFinished(async () => {
    for (const l of held) await l.release();
  });
  expect(held).toHaveLength(1);
  for (const r of results.filter((x) => x.status === 'rejected')) {
    const err = (r as PromiseRejectedResult).reason as Error;
    expect(isGatewayError(err) && err.code).toBe('LL_DATA_DIR_LOCKED');
    expect(err.message).toContain(`pid ${process.pid} on host`);
  }
  // Only the holder's socket is left in the lock folder.
  expect(await readdir(join(dir, 'lock'))).toEqual([(held[0] as DataLock).socketPath.split('/').pop()]);
});

it('a released lock can be taken again at once, and release is idempotent', async () => {
  const dir = await folder();
  const first = await lockDataDir(dir);
  await expect(lockDataDir(dir)).rejects.toThrow(/is in use by another gateway/);
  await first.release();
  await first.release();
  const second = await lockDataDir(dir);
  onTestFinished(() => second.release());
  expect(await readdir(join(dir, 'lock'))).toHaveLength(1);
});
