// The registry's data model: what lab.yaml holds. Secrets are only ever hashes ($7$ PBKDF2-SHA512).

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
  /**
   * Whether the device measures a real person or stands in for one (a simulator): every point it
   * writes carries it as the tag `provenance`, and research exports leave `simulated` out unless
   * asked. Absent means `real` (provenance.ts, provenanceOf).
   */
  readonly provenance?: Provenance;
  /**
   * Who had the device when, oldest first: a reading is tagged with the subject of the assignment
   * covering its own timestamp (registry/assignments.ts). Empty: the device belongs to no resident.
   */
  readonly assignments: readonly Assignment[];
  /** Expected reporting interval as written ("60s"); used by liveness and quality jobs. */
  readonly interval?: string;
  readonly enabled: boolean;
  readonly passwordHash: string;
  /** Which client certificate may log this device in without a password (none: only its password). */
  readonly certificate?: CertificateRule;
}

/** `real`: a device at a resident or on the lab floor; `simulated`: a simulator's stand-in. */
export type Provenance = 'real' | 'simulated';

/**
 * A device's client-certificate rule (not a secret). Either way the certificate must chain to the
 * gateway's `tls.ca` and be valid now: `fingerprint256` pins one certificate (SHA-256, AB:CD:...);
 * `issuer: lab-ca` takes any certificate from that CA whose CN or a SAN equals the device id.
 */
export type CertificateRule = { readonly fingerprint256: string } | { readonly issuer: 'lab-ca' };

/**
 * A device's assignment to a resident: from `from` (inclusive; none: since the device was
 * registered) to `to` (exclusive; none: still assigned). Times are RFC 3339 with an offset.
 * A legacy `subject: CODE` in lab.yaml is read as one assignment with neither.
 */
export interface Assignment {
  /** The registry's internal participant code; never a name or national id. */
  readonly subject: string;
  readonly from?: string;
  readonly to?: string;
}

/**
 * `staff` read lab/# over MQTT; `gateway` is a gateway's own account on an external broker: it
 * takes the devices' messages through the shared subscription and answers on their `rejected` and
 * `status` topics, nothing else.
 */
export type AccountRole = 'staff' | 'gateway';
/** Every role, in the order help texts name them. */
export const ACCOUNT_ROLES: readonly AccountRole[] = ['staff', 'gateway'];

export interface Account {
  readonly id: string;
  readonly role: AccountRole;
  readonly enabled: boolean;
  readonly passwordHash: string;
}

/** A resident's consent to a project, from a date; a withdrawal removes them from later exports. */
export interface Consent {
  readonly subject: string;
  /** YYYY-MM-DD */
  readonly from: string;
  readonly withdrawn?: string;
}

/** An approved research project: its period, device types, released fields and consents. */
export interface Project {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly types: readonly string[];
  /** Released fields; empty means every field of the project's device types. */
  readonly fields: readonly string[];
  /** HMAC key for the project's pseudonyms (hex). Never exported, never logged. */
  readonly secret: string;
  readonly consents: readonly Consent[];
}

/** A researcher's API token: only its hash is stored. */
export interface ResearchToken {
  readonly id: string;
  readonly project: string;
  readonly researcher: string;
  readonly hash: string;
  readonly expires: string;
  readonly revoked: boolean;
}

/**
 * A staff API token (`livinglab tokens issue --staff`): reads what names devices, sites and times
 * of activity (/api/v1/status), never a project's research API. Same `ll_<id>_<secret>` form and
 * `$7$` hash as a researcher token; only the hash is stored, in the `hash` field of this list, which
 * the file layer keeps wherever it keeps the researcher tokens' hashes.
 */
export interface StaffToken {
  readonly id: string;
  /** Who or what holds it (a person, "prometheus", "status-cli"), for lists and logs. */
  readonly name: string;
  readonly hash: string;
  readonly expires: string;
  readonly revoked: boolean;
}

export interface RegistryData {
  readonly version: 1;
  readonly sites: readonly Site[];
  readonly devices: readonly Device[];
  readonly accounts: readonly Account[];
  readonly projects: readonly Project[];
  readonly tokens: readonly ResearchToken[];
  readonly staffTokens: readonly StaffToken[];
}

export const EMPTY_REGISTRY: RegistryData = {
  version: 1,
  sites: [],
  devices: [],
  accounts: [],
  projects: [],
  tokens: [],
  staffTokens: [],
};
