// The registry's edit lock: every read-modify-write of lab.yaml and its secrets file (`livinglab`
// edits, `simulate` provisioning, the secrets migration at start) runs holding it, so two editors
// never both read the same registry and the later write never drops the earlier one's change.
// One lock covers both files (planRegistryWrite writes them in several steps). It sits beside the
// file a symlinked lab.yaml points to, so two paths to one registry share one lock. Readers (the
// gateway's reloads, `devices list`, reports) never take it: each file is replaced atomically.
import { GatewayError } from '../errors.js';
import { resolveLink } from './atomic-write.js';
import { withLockFile } from './lock-file.js';

/** How long a second editor waits for the first; a large registry's edit takes seconds. */
export const REGISTRY_LOCK_TIMEOUT_MS = 60_000;

/** The lock file of a registry file: `lab.yaml.lock` beside the (link-resolved) file. */
export async function registryLockFile(registryFile: string): Promise<string> {
  return `${await resolveLink(registryFile)}.lock`;
}

/** Runs `fn` (read, change, write the registry) holding the registry's edit lock. */
export async function withRegistryLock<T>(
  registryFile: string,
  fn: () => Promise<T>,
  timeoutMs = REGISTRY_LOCK_TIMEOUT_MS,
): Promise<T> {
  const lockFile = await registryLockFile(registryFile);
  return withLockFile(lockFile, fn, {
    timeoutMs,
    locked: (holder) =>
      new GatewayError(
        'LL_REGISTRY_LOCKED',
        `registry ${registryFile} is being edited by another process (${holder}; lock ${lockFile}) for more than ${timeoutMs / 1000} s; nothing was changed: wait for that edit to finish and try again, or, if that process is no longer running, delete ${lockFile}`,
      ),
  });
}
