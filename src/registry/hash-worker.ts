// The hashing thread's side of hash-pool.ts: computes PBKDF2-SHA512 synchronously, one request at a
// time, in its own thread, so password checks never take one of libuv's four threads from the
// spool's file writes. Receives secrets; never logs or keeps them.
import { pbkdf2Sync } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

interface Request {
  id: number;
  secret: string | Uint8Array;
  salt: Uint8Array;
  iterations: number;
  keylen: number;
}

parentPort?.on('message', (m: Request) => {
  try {
    const out = pbkdf2Sync(m.secret, m.salt, m.iterations, m.keylen, 'sha512');
    parentPort?.postMessage({ id: m.id, out });
  } catch (err) {
    parentPort?.postMessage({ id: m.id, error: (err as Error).message });
  }
});
