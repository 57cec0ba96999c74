// Reads and checks the registry file in a worker thread. A 10,000-device registry takes ~2 s of
// YAML parsing and ~100 MiB of transient heap: on the gateway's event loop that stalled every MQTT
// connection for the whole parse on each reload, and the heap it grew to was never given back
// (bench/connections.ts: 206 MiB RSS idle, before any device connected). A worker's heap is freed
// with the worker; only the plain result is copied back. The worker reads lab.yaml and its secrets
// file, and on start first migrates secrets out of lab.yaml (secrets-migrate.ts) and marks the
// devices a simulator made as simulated (provenance-migrate.ts).
import { Worker } from 'node:worker_threads';
import { type ErrorCode, GatewayError } from '../errors.js';
import type { ProvenanceMigration } from './provenance-migrate.js';
import type { MigrationResult } from './secrets-migrate.js';
import type { RegistryData } from './types.js';

export interface OffThreadRead {
  readonly data: RegistryData;
  /** Set when `migrate` was asked for. */
  readonly migration?: MigrationResult;
  /** Set when `migrate` was asked for. */
  readonly provenance?: ProvenanceMigration;
}

type Reply = ({ ok: true } & OffThreadRead) | { ok: false; code?: ErrorCode; message: string };

export function readRegistryFileOffThread(
  file: string,
  opts: { secretsFile: string; migrate?: boolean },
): Promise<OffThreadRead> {
  const workerData = { file, secretsFile: opts.secretsFile, migrate: opts.migrate ?? false };
  const entry = new URL(`./read-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
  // From source (tests, tsx) the worker registers tsx's loader first; the build is plain JS.
  const fromSource = entry.pathname.endsWith('.ts');
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Promise((resolve, reject) => {
    const worker = fromSource
      ? new Worker(bootstrap, { eval: true, workerData })
      : new Worker(entry, { workerData });
    let settled = false;
    worker.once('message', (reply: Reply) => {
      settled = true;
      if (reply.ok)
        resolve({
          data: reply.data,
          ...(reply.migration ? { migration: reply.migration } : {}),
          ...(reply.provenance ? { provenance: reply.provenance } : {}),
        });
      else reject(reply.code ? new GatewayError(reply.code, reply.message) : new Error(reply.message));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`registry reader exited with code ${code} before answering (${file})`));
    });
  });
}
