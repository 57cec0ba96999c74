// Worker-thread entry of read-off-thread.ts: parse, check, post the plain data (or the error), exit.
import { parentPort, workerData } from 'node:worker_threads';
import { GatewayError } from '../errors.js';
import { readRegistryFile } from './file.js';

const { file } = workerData as { file: string };
readRegistryFile(file).then(
  (data) => parentPort?.postMessage({ ok: true, data }),
  (err: Error) =>
    parentPort?.postMessage({
      ok: false,
      code: err instanceof GatewayError ? err.code : undefined,
      message: err.message,
    }),
);
