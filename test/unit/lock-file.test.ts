// The lock file behind the registry's edit lock and the audit lock (registry/lock-file.ts): one
// holder at a time, also when many waiters take over a dead holder's lock at once; a live holder
// makes a waiter give up with a message naming the lock and the holder.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { withRegistryLock } from '../../src/registry/edit-lock.js';
import { processStartTime, withLockFile } from '../../src/registry/lock-file.js';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'll-lock-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('lock file', () => {
  it('lets one holder in at a time, also when twenty waiters take over a dead holder at once', async () => {
    const lock = join(tempDir(), 'lab.yaml.lock');
    const dead = { pid: 2 ** 22 + 1, host: hostname(), since: '2026-01-01T00:00:00Z', token: 'dead' };
    writeFileSync(lock, JSON.stringify(dead));
    let inside = 0;
    let most = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withLockFile(
          lock,
          async () => {
            inside++;
            most = Math.max(most, inside);
            await sleep(2);
            inside--;
            done++;
          },
          { timeoutMs: 30_000, locked: () => new Error('locked') },
        ),
      ),
    );
    expect({ most, done }).toEqual({ most: 1, done: 20 });
  });

  it('gives up on a live holder with LL_REGISTRY_LOCKED naming the lock file and the holder', async () => {
    const reg = join(tempDir(), 'lab.yaml');
    const live = {
      pid: process.pid,
      host: hostname(),
      since: '2026-11-29T10:00:00.000Z',
      started: processStartTime('self'),
      token: 'live',
    };
    writeFileSync(`${reg}.lock`, JSON.stringify(live));
    let ran = false;
    const failed = await withRegistryLock(
      reg,
      async () => {
        ran = true;
      },
      200,
    ).catch((err: unknown) => err as Error & { code?: string });
    expect(ran).toBe(false);
    expect(failed).toMatchObject({ code: 'LL_REGISTRY_LOCKED' });
    expect((failed as Error).message).toContain(`${reg}.lock`);
    expect((failed as Error).message).toContain(
      `pid ${process.pid} on host ${hostname()} since 2026-11-29T10:00:00.000Z`,
    );
    // The live holder's lock is left as it was.
    expect(JSON.parse(readFileSync(`${reg}.lock`, 'utf8'))).toEqual(live);
  });
});
