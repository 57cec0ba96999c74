// Moves the secrets of an older lab.yaml (password and token hashes, project keys inline) into the
// secrets file, on the first start of `serve` and by `livinglab registry migrate`. Every value is
// carried over byte for byte, so no pseudonym changes. Crash-safe and idempotent: the secrets file is
// written first, and a lab.yaml that still holds secrets the secrets file also holds, with the same
// values, is a valid registry that the next run finishes migrating. Two different values for one
// secret are refused, never guessed between. It never creates a project key. A migration that
// writes runs under the registry's edit lock (edit-lock.ts), reading the files again inside it, so
// it never undoes a `livinglab` edit made at the same time.
import { readFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, parseDocument } from 'yaml';
import { parseYaml } from '../config/yaml-file.js';
import { GatewayError } from '../errors.js';
import { writeFileAtomic } from './atomic-write.js';
import { withRegistryLock } from './edit-lock.js';
import { missingSecrets, parseRegistry } from './file.js';
import {
  isUnwritable,
  overlaySecrets,
  readSecretsFile,
  type Secrets,
  secretsFileFor,
  secretsNotIn,
  splitSecrets,
  writeSecretsFile,
} from './secrets-file.js';

export interface MigrationResult {
  /** The secrets file used. */
  readonly secretsFile: string;
  /** Secrets taken out of lab.yaml (0: it held none). */
  readonly moved: number;
  /** True when a secrets file was created for a registry that needs no secret yet. */
  readonly created: boolean;
}

const OLD_HEADER = /secrets are stored only as \$7\$/;
const NEW_HEADER =
  ' Living Lab Gateway device registry. Edit with the `livinglab` command.\n' +
  ' It holds no secret: password and token hashes and project keys are in the secrets file beside it\n' +
  ' (lab.secrets.yaml), which must never be committed.';

export async function migrateRegistrySecrets(
  registryFile: string,
  secretsFile = '',
): Promise<MigrationResult> {
  const secretsPath = secretsFileFor(registryFile, secretsFile);
  // A first look without the lock: most starts have nothing to move, and a read-only registry
  // folder (a container's mounted configuration) could not even hold the lock file.
  const text = await readRegistryText(registryFile);
  const { paths } = splitSecrets(parseYaml(text, registryFile, 'LL_REGISTRY_PARSE').data);
  const existing = await readSecretsFile(secretsPath);
  // Validates the whole registry (and refuses conflicting values) before anything else.
  parseRegistry(text, registryFile, { secrets: existing, file: secretsPath });
  if (paths.length === 0 && existing) return { secretsFile: secretsPath, moved: 0, created: false };
  try {
    return await withRegistryLock(registryFile, () => migrateLocked(registryFile, secretsPath));
  } catch (err) {
    // Only creating an empty secrets file is optional; moving secrets is not (LL_SECRETS_READ_ONLY).
    if (paths.length === 0 && isUnwritable(err))
      return { secretsFile: secretsPath, moved: 0, created: false };
    throw err;
  }
}

async function migrateLocked(registryFile: string, secretsPath: string): Promise<MigrationResult> {
  const text = await readRegistryText(registryFile);
  const { secrets: inline, paths } = splitSecrets(parseYaml(text, registryFile, 'LL_REGISTRY_PARSE').data);
  const existing = await readSecretsFile(secretsPath);
  // Validates the whole registry and refuses conflicting values before anything is written.
  const data = parseRegistry(text, registryFile, { secrets: existing, file: secretsPath });
  if (paths.length === 0) {
    const created = !existing && Object.values(missingSecrets(data)).every((ids) => ids.length === 0);
    if (created) {
      try {
        await writeSecretsFile(secretsPath, { sections: {} });
      } catch (err) {
        if (!isUnwritable(err)) throw err;
        return { secretsFile: secretsPath, moved: 0, created: false };
      }
    }
    return { secretsFile: secretsPath, moved: 0, created };
  }
  if (!existing || secretsNotIn(existing.sections, inline) > 0) {
    await writeMovedSecrets(secretsPath, registryFile, existing, inline);
  }
  const doc = parseDocument(text);
  for (const path of paths) doc.deleteIn(path);
  replaceOldHeader(doc);
  try {
    await writeFileAtomic(registryFile, doc.toString({ lineWidth: 0 }));
  } catch (err) {
    if (!isUnwritable(err)) throw err;
    throw new GatewayError(
      'LL_SECRETS_READ_ONLY',
      `the secrets of ${registryFile} are now in ${secretsPath}, but ${registryFile} cannot be rewritten without them (${(err as Error).message}); it still works, but holds secrets: run \`livinglab registry migrate\` where ${registryFile} is writable`,
      { cause: err },
    );
  }
  return { secretsFile: secretsPath, moved: paths.length, created: !existing };
}

/** The header older versions wrote said secrets were inside; it would now mislead. */
function replaceOldHeader(doc: Document): void {
  if (doc.commentBefore && OLD_HEADER.test(doc.commentBefore)) doc.commentBefore = NEW_HEADER;
  // Directly above the first key, yaml attaches the comment to that key.
  const first = isMap(doc.contents) ? doc.contents.items[0]?.key : undefined;
  if (isScalar(first) && first.commentBefore && OLD_HEADER.test(first.commentBefore))
    first.commentBefore = NEW_HEADER;
}

async function readRegistryText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new GatewayError('LL_REGISTRY_NOT_FOUND', `registry file ${file} does not exist`, { cause: err });
    }
    throw new GatewayError('LL_REGISTRY_PARSE', `cannot read registry ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

async function writeMovedSecrets(
  secretsPath: string,
  registryFile: string,
  existing: Secrets | undefined,
  inline: Secrets['sections'],
): Promise<void> {
  try {
    await writeSecretsFile(secretsPath, {
      ...(existing?.auditKey ? { auditKey: existing.auditKey } : {}),
      sections: overlaySecrets(existing?.sections ?? {}, inline),
    });
  } catch (err) {
    if (!isUnwritable(err)) throw err;
    throw new GatewayError(
      'LL_SECRETS_READ_ONLY',
      `${registryFile} still holds secrets (password hashes, project keys) that must move to the secrets file ${secretsPath}, which cannot be written (${(err as Error).message}); on a machine where both are writable run \`livinglab registry migrate --registry ${registryFile} --secrets-file <new file>\`, then install the migrated ${registryFile} and the new secrets file (mode 0400 as a container secret) in their place`,
      { cause: err },
    );
  }
}
