// Provisioning a simulated fleet: the credentials file beside the registry never shares a temporary
// file with another run; a fleet or a device cannot report every 0 s.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { parseFleet } from '../../../simulators/fleet.js';
import { credentialsFileFor, provisionFleet, readCredentials } from '../../../simulators/provision.js';
import { bundledSchemasDir } from '../../../src/config/load.js';
import { addDevice } from '../../../src/registry/edit.js';
import { readRegistryFile } from '../../../src/registry/file.js';
import { createPasswordVerifier } from '../../../src/registry/passwords.js';
import { EMPTY_REGISTRY } from '../../../src/registry/types.js';
import { loadSchemas } from '../../../src/schemas/load.js';

const fleet = (name: string) =>
  parseFleet(
    `
name: ${name}
seed: 1
start: 2026-11-02T00:00:00Z
duration: 1h
sites:
  - id: ${name}
    residents:
      - id: p-1
        devices:
          - { type: pulse-oximeter }
`,
    `${name}.yaml`,
  );

it('lets runs provision side by side without one losing its credentials file to the other', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-provision-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  const schemas = loadSchemas(bundledSchemasDir());
  // Several runs at once (two terminals, a script in a loop): each must finish.
  const runs = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) => provisionFleet({ registry, fleet: fleet(`site-${i}`), schemas })),
  );
  expect(
    runs.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
  ).toEqual([]);
  expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  // The file left is whole JSON from one of the runs (lost registry updates between parallel
  // runs are the registry lock's to prevent, not this file's).
  expect(Object.keys(await readCredentials(credentialsFileFor(registry))).length).toBeGreaterThan(0);
});

it('keeps every device and every password of runs that provision side by side (the registry edit lock)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-provision-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registry = join(dir, 'lab.yaml');
  const schemas = loadSchemas(bundledSchemasDir());
  await Promise.all(
    Array.from({ length: 8 }, (_, i) => provisionFleet({ registry, fleet: fleet(`site-${i}`), schemas })),
  );
  const data = await readRegistryFile(registry);
  expect(data.devices.map((d) => d.site).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `site-${i}`));
  const credentials = await readCredentials(credentialsFileFor(registry));
  const verifier = createPasswordVerifier();
  for (const d of data.devices)
    expect(await verifier.verify(d.passwordHash, credentials[d.id] ?? ''), d.id).toBe(true);
});

it('refuses an interval of 0 in a fleet file (naming file and line) and in a registry device', () => {
  const zero = `
name: zero
seed: 1
start: 2026-11-02T00:00:00Z
duration: 1h
sites:
  - id: zero
    residents:
      - id: p-1
        devices:
          - { type: pulse-oximeter, interval: 0s }
`;
  expect(() => parseFleet(zero, 'zero.yaml')).toThrow(/^zero\.yaml:11: .*interval: must match pattern/);
  expect(() =>
    addDevice(EMPTY_REGISTRY, {
      id: 'ox-1',
      type: 'pulse-oximeter',
      schemaVersion: 1,
      site: 'a',
      vendor: 'v',
      interval: '0s',
      passwordHash: '',
    }),
  ).toThrow('interval "0s" must look like 30s, 5m or 1h (not 0)');
});
