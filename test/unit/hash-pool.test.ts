// The hashing thread: same bytes as crypto.pbkdf2, a bounded queue that refuses instead of
// growing, a quarter of it per owner, and a thread that ends when idle and comes back on demand.
import { pbkdf2Sync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createHashPool, type HashPool } from '../../src/registry/hash-pool.js';
import { createPasswordVerifier, hashSecretSync } from '../../src/registry/passwords.js';

const pools: HashPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.stop();
});
const pool = (maxPending: number, idleMs?: number) => {
  const p = createHashPool({ maxPending, ...(idleMs ? { idleMs } : {}) });
  pools.push(p);
  return p;
};

describe('hash pool', () => {
  it('computes what crypto.pbkdf2 computes', async () => {
    const salt = Buffer.from('0123456789ab');
    const out = await pool(4).hash('secret', salt, 1000, 64);
    expect(out.equals(pbkdf2Sync('secret', salt, 1000, 64, 'sha512'))).toBe(true);
  });

  it('refuses checks over the queue bound with LL_AUTH_BUSY, and over a quarter of it per owner', async () => {
    const p = pool(8);
    const salt = Buffer.from('salt');
    const slow = (owner: string) => p.hash('x', salt, 200_000, 64, owner);
    const a = [slow('10.0.0.1'), slow('10.0.0.1')];
    await expect(slow('10.0.0.1')).rejects.toMatchObject({ code: 'LL_AUTH_BUSY' });
    const others = ['10.0.0.2', '10.0.0.2', '10.0.0.3', '10.0.0.3', '10.0.0.4', '10.0.0.4'].map(slow);
    expect(p.pending).toBe(8);
    await expect(slow('10.0.0.5')).rejects.toMatchObject({ code: 'LL_AUTH_BUSY' });
    expect(p.refused).toBe(2);
    await Promise.all([...a, ...others]);
    expect(p.pending).toBe(0);
  });

  it('ends an idle thread and starts one again for the next check', async () => {
    const p = pool(4, 50);
    const salt = Buffer.from('salt');
    await p.hash('x', salt, 10, 64);
    await new Promise((r) => setTimeout(r, 200));
    const out = await p.hash('y', salt, 10, 64);
    expect(out.equals(pbkdf2Sync('y', salt, 10, 64, 'sha512'))).toBe(true);
  });

  it('verifies through the pool, shares concurrent checks of one credential, and counts dummy hashes', async () => {
    const v = createPasswordVerifier({ hash: pool(4).hash });
    const hash = hashSecretSync('right', 1000);
    const results = await Promise.all(Array.from({ length: 20 }, () => v.verify(hash, 'right')));
    expect(results.every(Boolean)).toBe(true);
    expect(v.stats.hashes).toBe(1);
    expect(await v.verify(hash, 'wrong')).toBe(false);
    expect(await v.verifyUnknown('anything', 1000)).toBe(false);
    expect(v.stats).toEqual({ hashes: 2, dummyHashes: 1 });
  });
});
