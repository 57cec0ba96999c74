// Worker-thread entry of read-off-thread.ts: (on start) migrate secrets out of lab.yaml and mark
// simulator-made devices as simulated, then parse, check, post the plain data (or the error), exit.
import { parentPort, workerData } from 'node:worker_threads';
import { GatewayError } from '../errors.js';
import { readRegistryFile } from './file.js';
import { markSimulatorDevices, type ProvenanceMigration } from './provenance-migrate.js';
import { type MigrationResult, migrateRegistrySecrets } from './secrets-migrate.js';

const { file, secretsFile, migrate } = workerData as { file: string; secretsFile: string; migrate: boolean };

async function read() {
  const migration: MigrationResult | undefined = migrate
    ? await migrateRegistrySecrets(file, secretsFile)
    : undefined;
  const provenance: ProvenanceMigration | undefined = migrate ? await markSimulatorDevices(file) : undefined;
  return { data: await readRegistryFile(file, secretsFile), migration, provenance };
}

read().then(
  ({ data, migration, provenance }) => parentPort?.postMessage({ ok: true, data, migration, provenance }),
  (err: Error) =>
    parentPort?.postMessage({
      ok: false,
      code: err instanceof GatewayError ? err.code : undefined,
      message: err.message,
    }),
);
