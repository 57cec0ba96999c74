// Pure edits of registry data, used by the `livinglab devices|accounts` commands. Each returns a
// new RegistryData or throws GatewayError with a message naming the device or account.
import { durationPattern } from '../config/duration.js';
import { GatewayError } from '../errors.js';
import { openAssignment, parseAssignmentTime } from './assignments.js';
import { SEGMENT_RE, SEGMENT_RULE, SUBJECT_RE } from './ids.js';
import type { ImportedCredential } from './passwords.js';
import type { Account, Assignment, CertificateRule, Device, Provenance, RegistryData } from './types.js';

function checkSegment(value: string, what: string): void {
  if (!SEGMENT_RE.test(value)) {
    throw new GatewayError('LL_INPUT_INVALID', `${what} "${value}" must be ${SEGMENT_RULE}`);
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
  /** Absent: left out of lab.yaml, read as real (`livinglab devices add` always says which). */
  provenance?: Provenance;
  /** Assigned with no start: the device has been this resident's since it was registered. */
  subject?: string;
  interval?: string;
  passwordHash: string;
  certificate?: CertificateRule;
}

export function addDevice(data: RegistryData, d: NewDevice): RegistryData {
  checkSegment(d.id, 'device id');
  checkSegment(d.type, 'device type');
  checkSegment(d.site, 'site');
  const taken = usernameTaken(data, d.id);
  if (taken) throw new GatewayError('LL_REGISTRY_CONFLICT', `${taken} already exists in the registry`);
  if (d.subject !== undefined && !SUBJECT_RE.test(d.subject)) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `subject "${d.subject}" must be a participant code (letters, digits, - and _)`,
    );
  }
  if (d.interval !== undefined && !new RegExp(durationPattern({ positive: true })).test(d.interval)) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `interval "${d.interval}" must look like 30s, 5m or 1h (not 0)`,
    );
  }
  const { subject, ...rest } = d;
  const device: Device = { ...rest, assignments: subject === undefined ? [] : [{ subject }], enabled: true };
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

/** Sets (or, with undefined, removes) the client certificate that may log the device in. */
export function setDeviceCertificate(
  data: RegistryData,
  id: string,
  certificate: CertificateRule | undefined,
): RegistryData {
  return replaceDevice(data, id, (d) => {
    const { certificate: _old, ...rest } = d;
    return certificate ? { ...rest, certificate } : rest;
  });
}

/** Marks a device real or simulated; its readings are tagged so from the gateway's next reload. */
export function setDeviceProvenance(data: RegistryData, id: string, provenance: Provenance): RegistryData {
  return replaceDevice(data, id, (d) => ({ ...d, provenance }));
}

export function setDevicePassword(data: RegistryData, id: string, passwordHash: string): RegistryData {
  return replaceDevice(data, id, (d) => ({ ...d, passwordHash }));
}

/**
 * Moves a device to `subject` (undefined: to no one) at `at`: closes the open assignment at that
 * time and opens the next. History is only ever appended to: a time at or before the last recorded
 * change is refused, so a recorded period is never rewritten.
 */
export function assignDevice(
  data: RegistryData,
  id: string,
  subject: string | undefined,
  at: string,
): RegistryData {
  const atMs = parseAssignmentTime(at);
  if (atMs === undefined)
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `--from "${at}" must be an RFC 3339 time such as 2026-03-01T12:00:00Z`,
    );
  if (subject !== undefined && !SUBJECT_RE.test(subject))
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `subject "${subject}" must be a participant code (letters, digits, - and _)`,
    );
  return replaceDevice(data, id, (d) => {
    const open = openAssignment(d);
    if (subject === undefined && !open)
      throw new GatewayError('LL_REGISTRY_CONFLICT', `device ${id} is assigned to no one already`);
    if (subject !== undefined && open?.subject === subject)
      throw new GatewayError('LL_REGISTRY_CONFLICT', `device ${id} is already assigned to ${subject}`);
    const last = Math.max(
      ...d.assignments
        .flatMap((a) => [a.from, a.to])
        .map((t) => (t === undefined ? Number.NEGATIVE_INFINITY : (parseAssignmentTime(t) ?? 0))),
    );
    // Closing the open assignment at its own start would leave it empty.
    if (atMs < last || (open !== undefined && atMs === last))
      throw new GatewayError(
        'LL_REGISTRY_CONFLICT',
        `device ${id} has an assignment change recorded at or after ${at}; a move is recorded after the last one and never rewrites history`,
      );
    const when = new Date(atMs).toISOString();
    const closed: Assignment[] = d.assignments.map((a) => (a === open ? { ...a, to: when } : a));
    return { ...d, assignments: subject === undefined ? closed : [...closed, { subject, from: when }] };
  });
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
