// Marks the devices that a simulator registered before provenance existed as `provenance:
// simulated` in lab.yaml, on the first start of `serve` and by `livinglab registry migrate`, so that
// no simulated reading written from then on passes for a resident's. Which devices: the unmarked
// ones provenance.ts calls simulator-made (in the simulator's credentials file, or of the vendor
// `simulator`). Only adds the one key to those devices; comments, order and every other value in
// lab.yaml stay as they are. Never touches a device that already says real or simulated. Safe to
// run again; runs under the registry's edit lock, reading the file again inside it.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { parseYaml } from '../config/yaml-file.js';
import { writeFileAtomic } from './atomic-write.js';
import { withRegistryLock } from './edit-lock.js';
import { isUnmarkedSimulatorDevice, readSimulatorDeviceIds } from './provenance.js';
import { isUnwritable } from './secrets-file.js';

export interface ProvenanceMigration {
  /** Devices found simulator-made and unmarked. */
  readonly simulated: readonly string[];
  /** False when lab.yaml could not be written (read-only): they stay unmarked, and read as real. */
  readonly written: boolean;
}

const NOTHING: ProvenanceMigration = { simulated: [], written: true };

/** Indexes and ids of the unmarked simulator devices in lab.yaml's text. */
async function unmarked(registryFile: string, text: string): Promise<{ index: number; id: string }[]> {
  const { data } = parseYaml(text, registryFile, 'LL_REGISTRY_PARSE');
  const devices = Array.isArray(data.devices) ? (data.devices as unknown[]) : [];
  const simulatorIds = await readSimulatorDeviceIds(registryFile);
  const found: { index: number; id: string }[] = [];
  devices.forEach((d, index) => {
    if (d && typeof d === 'object' && typeof (d as { id?: unknown }).id === 'string') {
      const device = d as { id: string; vendor?: unknown; provenance?: unknown };
      if (isUnmarkedSimulatorDevice(device, simulatorIds)) found.push({ index, id: device.id });
    }
  });
  return found;
}

async function readText(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

export async function markSimulatorDevices(registryFile: string): Promise<ProvenanceMigration> {
  // A first look without the lock: most starts have nothing to mark, and a read-only registry
  // folder could not even hold the lock file.
  const text = await readText(registryFile);
  if (text === undefined || (await unmarked(registryFile, text)).length === 0) return NOTHING;
  try {
    return await withRegistryLock(registryFile, async () => {
      const current = await readText(registryFile);
      if (current === undefined) return NOTHING;
      const found = await unmarked(registryFile, current);
      if (found.length === 0) return NOTHING;
      const doc = parseDocument(current);
      for (const { index } of found) doc.setIn(['devices', index, 'provenance'], 'simulated');
      await writeFileAtomic(registryFile, doc.toString({ lineWidth: 0 }));
      return { simulated: found.map((f) => f.id), written: true };
    });
  } catch (err) {
    if (!isUnwritable(err)) throw err;
    return { simulated: (await unmarked(registryFile, text)).map((f) => f.id), written: false };
  }
}
