// Puts a fleet's devices in the registry (or reuses them) and keeps their generated passwords in a
// credentials file beside the registry (mode 0600), so later runs, `replay` and lab staff can
// connect as them. Writes the registry once, atomically, and the credentials after it: a password
// is never kept for a device whose registry write failed (a later run would reuse it, and fail to
// log in). The credentials go through a temporary file of their own, so two runs never share one.
// All of it runs under the registry's edit lock: a `livinglab devices` edit (or another run) beside
// it is neither lost nor loses this run's devices, and the credentials file follows the same order.
// Every device it registers is `provenance: simulated`; it never publishes as a real device (one
// marked real, or unmarked and not simulator-made: provenance.ts), and marks the simulator-made
// devices of older registries simulated when it reuses them.
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { GatewayError } from '../src/errors.js';
import { addDevice, setDevicePassword, setDeviceProvenance } from '../src/registry/edit.js';
import { withRegistryLock } from '../src/registry/edit-lock.js';
import { readRegistryFile, writeRegistryFile } from '../src/registry/file.js';
import { GENERATED_SECRET_ITERATIONS, generateSecret, hashSecretSync } from '../src/registry/passwords.js';
import {
  isUnmarkedSimulatorDevice,
  provenanceOf,
  simulatorCredentialsFileFor,
} from '../src/registry/provenance.js';
import { type Device, EMPTY_REGISTRY, type RegistryData } from '../src/registry/types.js';
import type { SchemaSet } from '../src/schemas/types.js';
import type { Fleet } from './fleet.js';

export type Credentials = Record<string, string>;

export const credentialsFileFor = simulatorCredentialsFileFor;

export async function readCredentials(file: string): Promise<Credentials> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Credentials;
  } catch {
    return {};
  }
}

export async function provisionFleet(opts: {
  registry: string;
  /** The registry's secrets file ('' or absent: beside the registry). */
  secretsFile?: string;
  fleet: Fleet;
  schemas: SchemaSet;
}): Promise<{ credentials: Credentials; added: number; reused: number; written: boolean }> {
  return withRegistryLock(opts.registry, () => provisionLocked(opts));
}

async function provisionLocked(opts: Parameters<typeof provisionFleet>[0]) {
  const credFile = credentialsFileFor(opts.registry);
  const credentials = await readCredentials(credFile);
  let data: RegistryData;
  try {
    data = await readRegistryFile(opts.registry, opts.secretsFile);
  } catch (err) {
    if ((err as { code?: string }).code !== 'LL_REGISTRY_NOT_FOUND') throw err;
    data = EMPTY_REGISTRY;
  }
  const existing = new Map(data.devices.map((d) => [d.id, d]));
  const made = new Set(Object.keys(credentials));
  let added = 0;
  let reused = 0;
  let changed = false;
  for (const d of opts.fleet.devices) {
    const old = existing.get(d.id);
    if (old && simulatedOrRefused(old, made) === 'unmarked') {
      data = setDeviceProvenance(data, d.id, 'simulated');
      changed = true;
    }
    if (old && credentials[d.id]) {
      reused++;
      continue;
    }
    const secret = generateSecret();
    const hash = hashSecretSync(secret, GENERATED_SECRET_ITERATIONS);
    credentials[d.id] = secret;
    changed = true;
    if (old) {
      data = setDevicePassword(data, d.id, hash);
      reused++;
    } else {
      const schema = opts.schemas.latest(d.type);
      data = addDevice(data, {
        id: d.id,
        type: d.type,
        schemaVersion: schema?.version ?? 1,
        site: d.site,
        vendor: opts.fleet.vendor,
        provenance: 'simulated',
        subject: d.resident,
        // Event devices speak when something happens: registering an interval would make liveness
        // call them silent on a quiet day.
        ...(schema?.channel === 'telemetry' ? { interval: d.interval } : {}),
        passwordHash: hash,
      });
      added++;
    }
  }
  if (changed) {
    await writeRegistryFile(opts.registry, data, opts.secretsFile);
    const tmp = `${credFile}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(credentials, null, 1), { mode: 0o600, flag: 'wx' });
      await rename(tmp, credFile);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
  return { credentials, added, reused, written: changed };
}

/**
 * Whether an existing device may be the fleet's: 'simulated' (marked so), 'unmarked' (simulator-made
 * in an older registry: mark it), or a refusal. A real device's password would be replaced and
 * simulated readings written as a resident's.
 */
function simulatedOrRefused(device: Device, made: ReadonlySet<string>): 'simulated' | 'unmarked' {
  if (provenanceOf(device) === 'simulated') return 'simulated';
  if (isUnmarkedSimulatorDevice(device, made)) return 'unmarked';
  throw new GatewayError(
    'LL_REGISTRY_CONFLICT',
    `device ${device.id} is registered as a real device (vendor ${device.vendor}); a simulated fleet never publishes as one: give the fleet's site another id (device ids are {site}-{type}), or, if it is a simulator's device, mark it with \`livinglab devices provenance ${device.id} simulated\``,
  );
}
