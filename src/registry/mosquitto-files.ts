// Mosquitto 2.0's password_file and acl_file from the registry, for a lab that runs Mosquitto in
// front of the gateway: the same people get in with the same passwords and reach the same topics as
// on the embedded broker (acl.ts). Passwords are the registry's `$7$` hashes as they are; an entry
// Mosquitto 2.0 cannot read (another format, or a salt that is not 12 bytes: mosquitto_passwd 2.1's
// 64-byte salts, or hashes written before the gateway used 12) is left out and named, so it is
// never silently locked out. Disabled devices and accounts are left out of both files.
// Mosquitto cannot tie a client id to a username through these files: its configuration needs
// `use_username_as_clientid true` (README, "Broker authentication hooks"), which makes a device's
// client id its device id as on the embedded broker.
// Rendering is pure; writing is atomic (tmp + rename) with mode 0640, so a `mosquitto` group can
// read them and nobody else. It never writes a clear-text secret (there is none to write).
import { join } from 'node:path';
import { GatewayError } from '../errors.js';
import { writeFileAtomic } from './atomic-write.js';
import { MOSQUITTO_SALT_BYTES, parseHash } from './passwords.js';
import {
  ALL_TOPICS,
  deviceTopic,
  READING_CHANNELS,
  REJECTED_CHANNEL,
  rejectedTopic,
  statusTopic,
} from './topics.js';
import type { RegistryData } from './types.js';

export const PASSWORD_FILE = 'password_file';
/** Every device's topics, as an acl_file pattern: what a gateway account answers on. */
const ANY_DEVICE = { site: '+', type: '+', id: '+' };
export const ACL_FILE = 'acl_file';
/** Group-readable, so Mosquitto running as its own user in the gateway's group can read them. */
export const MOSQUITTO_FILE_MODE = 0o640;

export interface MosquittoFiles {
  readonly passwordFile: string;
  readonly aclFile: string;
  /** Entries left out of the password file, with why (for a warning naming them). */
  readonly skipped: readonly { readonly id: string; readonly reason: string }[];
}

/** Why Mosquitto 2.0 could not use this hash, or undefined when it can. */
export function mosquittoHashProblem(hash: string): string | undefined {
  const parsed = parseHash(hash);
  if (typeof parsed === 'string') return parsed;
  if (parsed.salt.length !== MOSQUITTO_SALT_BYTES)
    return `its salt is ${parsed.salt.length} bytes and Mosquitto 2.0 reads only ${MOSQUITTO_SALT_BYTES}; set a new password (livinglab devices passwd) to write one it can read`;
  return undefined;
}

const HEADER = [
  '# Written by `livinglab broker mosquitto` from the registry; rewritten on every registry change.',
  '# Do not edit: change lab.yaml (livinglab devices ...) instead.',
];

export function renderMosquittoFiles(data: RegistryData): MosquittoFiles {
  const passwords: string[] = [];
  const skipped: { id: string; reason: string }[] = [];
  const acl: string[] = [
    ...HEADER,
    '# Devices write their own telemetry, event and status and read their own rejected topic; staff',
    '# read everything under lab/ and write nothing; gateway accounts read lab/ (their shared',
    "# subscription) and write devices' rejected and status topics. Needs `use_username_as_clientid true`",
    "# on the devices' listener.",
  ];
  const withPassword = (id: string, hash: string) => {
    const problem = mosquittoHashProblem(hash);
    if (problem) skipped.push({ id, reason: problem });
    else passwords.push(`${id}:${hash}`);
    return problem === undefined;
  };
  for (const d of data.devices) {
    if (!d.enabled || !withPassword(d.id, d.passwordHash)) continue;
    acl.push('', `user ${d.id}`);
    for (const channel of READING_CHANNELS) acl.push(`topic write ${deviceTopic(d, channel)}`);
    acl.push(`topic write ${statusTopic(d)}`, `topic read ${rejectedTopic(d)}`);
  }
  for (const a of data.accounts) {
    if (!a.enabled || !withPassword(a.id, a.passwordHash)) continue;
    acl.push('', `user ${a.id}`, `topic read ${ALL_TOPICS}`);
    // Mosquitto checks a `$share/GROUP/...` subscription against the filter after the group (so
    // `read lab/#` covers the gateways' shared subscription), and each publish against its topic.
    if (a.role === 'gateway')
      acl.push(
        `topic write ${deviceTopic(ANY_DEVICE, REJECTED_CHANNEL)}`,
        `topic write ${statusTopic(ANY_DEVICE)}`,
      );
  }
  return {
    passwordFile: `${passwords.join('\n')}\n`,
    aclFile: `${acl.join('\n')}\n`,
    skipped,
  };
}

/**
 * Writes both files into `dir` (created when missing), the password file first. Resolves whether
 * anything changed: unchanged files are not rewritten, so Mosquitto need not reload.
 */
export async function writeMosquittoFiles(
  dir: string,
  files: MosquittoFiles,
  previous?: MosquittoFiles,
): Promise<boolean> {
  if (previous && previous.passwordFile === files.passwordFile && previous.aclFile === files.aclFile)
    return false;
  try {
    await writeFileAtomic(join(dir, PASSWORD_FILE), files.passwordFile, MOSQUITTO_FILE_MODE);
    await writeFileAtomic(join(dir, ACL_FILE), files.aclFile, MOSQUITTO_FILE_MODE);
  } catch (err) {
    throw new GatewayError(
      'LL_MOSQUITTO_FILES_FAILED',
      `cannot write Mosquitto's ${PASSWORD_FILE} and ${ACL_FILE} into ${dir}: ${(err as Error).message}; create the folder and let the gateway's user write to it`,
      { cause: err },
    );
  }
  return true;
}
