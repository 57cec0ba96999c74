// The live registry: an immutable snapshot of lab.yaml and its secrets file, reloaded when either
// changes. A reload that fails keeps the previous snapshot (a typo must not lock every device out)
// and is logged. Listeners get (next, previous) so the broker can disconnect devices that were
// disabled or removed. On start, secrets still in lab.yaml move to the secrets file and devices a
// simulator registered are marked simulated (provenance-migrate.ts); entries whose
// secret is in neither file are named in a warning at every load (they cannot log in or export).
import { EventEmitter } from 'node:events';
import { unwatchFile, watchFile } from 'node:fs';
import { stat } from 'node:fs/promises';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { withRegistryLock } from './edit-lock.js';
import { missingSecrets, writeRegistryFile } from './file.js';
import type { ProvenanceMigration } from './provenance-migrate.js';
import { readRegistryFileOffThread } from './read-off-thread.js';
import { secretsFileFor } from './secrets-file.js';
import { type Account, type Device, EMPTY_REGISTRY, type RegistryData, type Site } from './types.js';

export interface RegistrySnapshot {
  readonly data: RegistryData;
  readonly devices: ReadonlyMap<string, Device>;
  readonly accounts: ReadonlyMap<string, Account>;
  readonly sites: ReadonlyMap<string, Site>;
  readonly loadedAt: Date;
}

export function toSnapshot(data: RegistryData): RegistrySnapshot {
  return {
    data,
    devices: new Map(data.devices.map((d) => [d.id, d])),
    accounts: new Map(data.accounts.map((a) => [a.id, a])),
    sites: new Map(data.sites.map((s) => [s.id, s])),
    loadedAt: new Date(),
  };
}

export interface Registry {
  /** Reads the file; throws GatewayError (file and line) when it is malformed. */
  start(): Promise<void>;
  stop(): Promise<void>;
  current(): RegistrySnapshot;
  /** Re-reads the file now; resolves false (and keeps the old snapshot) when it is malformed. */
  reload(): Promise<boolean>;
  on(event: 'changed', listener: (next: RegistrySnapshot, previous: RegistrySnapshot) => void): void;
  readonly reloads: number;
}

/** Logs, at each load, the entries whose secret is in neither file. */
function warnMissingSecrets(data: RegistryData, secretsFile: string, log: Logger): void {
  const missing = missingSecrets(data);
  if (Object.values(missing).every((ids) => ids.length === 0)) return;
  log.warn(
    { secretsFile, ...missing },
    'secrets missing from the secrets file: these devices and accounts cannot log in, these projects cannot be exported; restore the secrets file from its backup',
  );
}

/** Says which simulator-made devices were marked simulated at start, or could not be. */
function warnSimulatorDevices(file: string, m: ProvenanceMigration | undefined, log: Logger): void {
  if (!m || m.simulated.length === 0) return;
  // A load-test fleet has thousands: the count, and the first ones by name.
  const named = { file, count: m.simulated.length, devices: m.simulated.slice(0, 20) };
  if (m.written)
    log.warn(
      named,
      'marked devices a simulator registered as provenance: simulated (their readings from now on are tagged simulated)',
    );
  else
    log.warn(
      named,
      'devices a simulator registered are not marked simulated and the registry file cannot be written: their readings are tagged real; run `livinglab registry migrate` where the file is writable',
    );
}

/**
 * The first read: secrets still in lab.yaml move to the secrets file first; a missing lab.yaml
 * becomes an empty registry (and its secrets file), which lets nobody in until devices are added.
 */
async function readAtStart(file: string, secretsFile: string, log: Logger): Promise<RegistryData> {
  try {
    const read = await readRegistryFileOffThread(file, { secretsFile, migrate: true });
    if (read.migration?.moved)
      log.warn(
        { file, secretsFile, moved: read.migration.moved },
        'moved the secrets out of the registry file into the secrets file (no value changed)',
      );
    warnSimulatorDevices(file, read.provenance, log);
    return read.data;
  } catch (err) {
    if (!(err instanceof GatewayError && err.code === 'LL_REGISTRY_NOT_FOUND')) throw err;
    // Under the edit lock, and only if still missing: a `devices add` may have created it meanwhile.
    const created = await withRegistryLock(file, async () => {
      if (
        await stat(file).then(
          () => true,
          () => false,
        )
      )
        return false;
      await writeRegistryFile(file, EMPTY_REGISTRY, secretsFile);
      return true;
    });
    if (!created) return readAtStart(file, secretsFile, log);
    log.warn(
      { file },
      'registry file did not exist: created an empty one; add devices with `livinglab devices add`',
    );
    return EMPTY_REGISTRY;
  }
}

/** Calls `changed` when one of `files` changes (not when it disappears: the last registry stays). */
function watchFiles(files: string[], pollMs: number, log: Logger, changed: () => void): void {
  // Polling (not fs.watch) survives the atomic rename writers use and works on network mounts.
  for (const watched of files) {
    watchFile(watched, { interval: pollMs, persistent: false }, (curr, prev) => {
      if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
      if (curr.nlink === 0) {
        log.warn({ file: watched }, 'registry file disappeared; keeping the last registry');
        return;
      }
      changed();
    });
  }
}

/**
 * One version of each file: an atomic replace gives a new inode, an edit in place a new size,
 * mtime or ctime (nanoseconds). Stat follows a symlinked file to the file it names.
 */
async function fingerprint(files: string[]): Promise<string> {
  const one = (f: string) =>
    stat(f, { bigint: true }).then(
      (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`,
      (err: NodeJS.ErrnoException) => err.code ?? 'unreadable',
    );
  return (await Promise.all(files.map(one))).join('|');
}

const RELOAD_FAILED = 'registry reload failed; keeping the previous registry';

/**
 * Reads until what was read is what the files hold: a write that lands while a large registry is
 * being read (seconds) is read by the next round, whether or not the file watcher saw it.
 */
async function readUntilLatest(files: string[], readOnce: () => Promise<boolean>, log: Logger) {
  for (;;) {
    const before = await fingerprint(files);
    const ok = await readOnce();
    if ((await fingerprint(files)) === before) return ok;
    log.info({ file: files[0] }, 'registry changed while it was read; reading it again');
  }
}

export function createRegistry(deps: {
  file: string;
  /** The configured secrets file ('' or absent: beside `file`). */
  secretsFile?: string;
  pollMs: number;
  log: Logger;
  /** Reads both files (default: in a worker thread); a test seam to make a reload slow. */
  readFiles?: typeof readRegistryFileOffThread;
}): Registry {
  const { file, pollMs, log } = deps;
  const secretsFile = secretsFileFor(file, deps.secretsFile);
  const events = new EventEmitter();
  let snapshot: RegistrySnapshot | undefined;
  let watching = false;
  let reloads = 0;
  let reloading: Promise<boolean> | undefined;

  const readOnce = async (): Promise<boolean> => {
    try {
      const { data } = await (deps.readFiles ?? readRegistryFileOffThread)(file, { secretsFile });
      const next = toSnapshot(data);
      const previous = snapshot;
      snapshot = next;
      reloads++;
      log.info({ file, devices: next.devices.size, accounts: next.accounts.size }, 'registry reloaded');
      warnMissingSecrets(data, secretsFile, log);
      if (previous) events.emit('changed', next, previous);
      return true;
    } catch (err) {
      log.error({ file, err: (err as Error).message }, RELOAD_FAILED);
      return false;
    }
  };

  const reload = () => readUntilLatest([file, secretsFile], readOnce, log);

  // A change of both files (a CLI write) while a reload runs is read by one more reload after it.
  let again = false;
  const scheduleReload = () => {
    if (!watching) return;
    if (reloading) {
      again = true;
      return;
    }
    reloading = reload().finally(() => {
      reloading = undefined;
      if (again) {
        again = false;
        scheduleReload();
      }
    });
  };

  return {
    get reloads() {
      return reloads;
    },
    async start() {
      const data = await readAtStart(file, secretsFile, log);
      snapshot = toSnapshot(data);
      log.info({ file, devices: snapshot.devices.size, accounts: snapshot.accounts.size }, 'registry loaded');
      warnMissingSecrets(data, secretsFile, log);
      watchFiles([file, secretsFile], pollMs, log, scheduleReload);
      watching = true;
    },
    async stop() {
      if (watching) for (const watched of [file, secretsFile]) unwatchFile(watched);
      watching = false;
      await reloading;
    },
    current() {
      if (!snapshot) throw new Error('registry used before start()');
      return snapshot;
    },
    reload,
    on(event, listener) {
      events.on(event, listener);
    },
  };
}
