// Real or simulated: which devices measure a person and which stand in for one. Owns the reading of
// a device's provenance (absent is real), the parsing of a typed one, and the one rule that says
// which unmarked devices a simulator made (registries written before provenance existed). Pure
// except readSimulatorDeviceIds, which reads the simulator's credentials file and never writes it.
import { readFile } from 'node:fs/promises';
import { GatewayError } from '../errors.js';
import type { Device, Provenance } from './types.js';

export const PROVENANCES: readonly Provenance[] = ['real', 'simulated'];

/** The vendor a fleet file names when it names none (simulators/fleet.ts). */
export const SIMULATOR_VENDOR = 'simulator';

/** A device's provenance; a device registered before the field existed, or without it, is real. */
export function provenanceOf(device: Pick<Device, 'provenance'>): Provenance {
  return device.provenance ?? 'real';
}

export function parseProvenance(text: string): Provenance {
  if (text === 'real' || text === 'simulated') return text;
  throw new GatewayError(
    'LL_INPUT_INVALID',
    `provenance "${text}" must be real (a device that measures a person or a room) or simulated (a simulator's stand-in)`,
  );
}

/**
 * The file where `livinglab simulate` keeps the generated passwords of the devices it registered
 * (lab.yaml → lab.sim-credentials.json). Only the simulator writes it, and `replay` publishes only
 * as the devices in it: an id in it is a device the simulator made.
 */
export function simulatorCredentialsFileFor(registry: string): string {
  return registry.replace(/(\.ya?ml)?$/, '.sim-credentials.json');
}

/** Ids of the devices in the simulator's credentials file; none when there is no such file. */
export async function readSimulatorDeviceIds(registry: string): Promise<ReadonlySet<string>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(simulatorCredentialsFileFor(registry), 'utf8'));
    return new Set(parsed && typeof parsed === 'object' ? Object.keys(parsed) : []);
  } catch {
    return new Set();
  }
}

/**
 * Whether an unmarked device (no `provenance` in lab.yaml) was made by a simulator: its id is in the
 * simulator's credentials file, or its vendor is the simulator's default. A device marked either way
 * is never re-judged: lab staff's word stands.
 */
export function isUnmarkedSimulatorDevice(
  device: { readonly id: string; readonly vendor?: unknown; readonly provenance?: unknown },
  simulatorIds: ReadonlySet<string>,
): boolean {
  if (device.provenance !== undefined) return false;
  return simulatorIds.has(device.id) || device.vendor === SIMULATOR_VENDOR;
}
