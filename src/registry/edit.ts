// Pure edits of registry data, used by the `livinglab devices|accounts` commands. Each returns a
// new RegistryData or throws GatewayError with a message naming the device or account.
import { GatewayError } from '../errors.js';
import type { ImportedCredential } from './passwords.js';
import { type Account, type Device, type RegistryData, SEGMENT_RE } from './types.js';

function checkSegment(value: string, what: string): void {
  if (!SEGMENT_RE.test(value)) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `${what} "${value}" must be 1–63 characters of a–z, 0–9 and "-", starting with a letter or digit`,
    );
  }
}

function usernameTaken(data: RegistryData, id: string): string | undefined {
  if (data.devices.some((d) => d.id === id)) return `device ${id}`;
  if (data.accounts.some((a) => a.id === id)) return `account ${id}`;
  return undefined;
}

export interface NewDevice {
  id: string;
  type: string;
  schemaVersion: number;
  site: string;
  vendor: string;
  subject?: string;
  interval?: string;
  passwordHash: string;
}

export function addDevice(data: RegistryData, d: NewDevice): RegistryData {
  checkSegment(d.id, 'device id');
  checkSegment(d.type, 'device type');
  checkSegment(d.site, 'site');
  const taken = usernameTaken(data, d.id);
  if (taken) throw new GatewayError('LL_REGISTRY_CONFLICT', `${taken} already exists in the registry`);
  if (d.subject !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(d.subject)) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `subject "${d.subject}" must be a participant code (letters, digits, - and _)`,
    );
  }
  if (d.interval !== undefined && !/^\d+(ms|s|m|h|d)$/.test(d.interval)) {
    throw new GatewayError('LL_INPUT_INVALID', `interval "${d.interval}" must look like 30s, 5m or 1h`);
  }
  const device: Device = { ...d, enabled: true };
  const sites = data.sites.some((s) => s.id === d.site) ? data.sites : [...data.sites, { id: d.site }];
  return { ...data, sites, devices: [...data.devices, device] };
}

function findDeviceIndex(data: RegistryData, id: string): number {
  const i = data.devices.findIndex((d) => d.id === id);
  if (i < 0) throw new GatewayError('LL_REGISTRY_NOT_FOUND', `device ${id} is not in the registry`);
  return i;
}

function replaceDevice(data: RegistryData, id: string, change: (d: Device) => Device): RegistryData {
  const i = findDeviceIndex(data, id);
  const devices = data.devices.slice();
  devices[i] = change(devices[i] as Device);
  return { ...data, devices };
}

export function setDeviceEnabled(data: RegistryData, id: string, enabled: boolean): RegistryData {
  return replaceDevice(data, id, (d) => ({ ...d, enabled }));
}

export function setDevicePassword(data: RegistryData, id: string, passwordHash: string): RegistryData {
  return replaceDevice(data, id, (d) => ({ ...d, passwordHash }));
}

export function removeDevice(data: RegistryData, id: string): RegistryData {
  findDeviceIndex(data, id);
  return { ...data, devices: data.devices.filter((d) => d.id !== id) };
}

export function addAccount(data: RegistryData, a: Omit<Account, 'enabled'>): RegistryData {
  checkSegment(a.id, 'account id');
  const taken = usernameTaken(data, a.id);
  if (taken) throw new GatewayError('LL_REGISTRY_CONFLICT', `${taken} already exists in the registry`);
  return { ...data, accounts: [...data.accounts, { ...a, enabled: true }] };
}

export interface ImportResult {
  data: RegistryData;
  updated: string[];
  added: string[];
  skipped: { username: string; reason: string }[];
}

/**
 * Applies imported Mosquitto credentials to devices and accounts that already exist. The file holds
 * no device type or site, so unknown usernames become devices only when `newDevices` says what they
 * are; otherwise they are reported, not guessed.
 */
export function applyImportedCredentials(
  data: RegistryData,
  creds: ImportedCredential[],
  newDevices?: Omit<NewDevice, 'id' | 'passwordHash'>,
): ImportResult {
  let next = data;
  const updated: string[] = [];
  const added: string[] = [];
  const skipped: ImportResult['skipped'] = [];
  for (const { username, hash } of creds) {
    if (next.devices.some((d) => d.id === username)) {
      next = setDevicePassword(next, username, hash);
      updated.push(username);
    } else if (next.accounts.some((a) => a.id === username)) {
      next = {
        ...next,
        accounts: next.accounts.map((a) => (a.id === username ? { ...a, passwordHash: hash } : a)),
      };
      updated.push(username);
    } else if (newDevices) {
      try {
        next = addDevice(next, { ...newDevices, id: username, passwordHash: hash });
        added.push(username);
      } catch (err) {
        skipped.push({ username, reason: (err as Error).message });
      }
    } else {
      skipped.push({
        username,
        reason: `no device or account "${username}" in the registry; add it first or pass --type, --site and --vendor`,
      });
    }
  }
  return { data: next, updated, added, skipped };
}
