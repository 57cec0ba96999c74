// The registry's data model: what lab.yaml holds. Secrets are only ever hashes ($7$ PBKDF2-SHA512).

export const SEGMENT_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
export const SEGMENT_RE = new RegExp(SEGMENT_PATTERN);

export interface Site {
  readonly id: string;
  readonly name?: string;
}

export interface Device {
  readonly id: string;
  readonly type: string;
  readonly schemaVersion: number;
  readonly site: string;
  readonly vendor: string;
  /** The registry's internal participant code of the current assignment; never a name or national id. */
  readonly subject?: string;
  /** Expected reporting interval as written ("60s"); used by liveness and quality jobs. */
  readonly interval?: string;
  readonly enabled: boolean;
  readonly passwordHash: string;
}

export type AccountRole = 'staff';

export interface Account {
  readonly id: string;
  readonly role: AccountRole;
  readonly enabled: boolean;
  readonly passwordHash: string;
}

export interface RegistryData {
  readonly version: 1;
  readonly sites: readonly Site[];
  readonly devices: readonly Device[];
  readonly accounts: readonly Account[];
}

export const EMPTY_REGISTRY: RegistryData = { version: 1, sites: [], devices: [], accounts: [] };
