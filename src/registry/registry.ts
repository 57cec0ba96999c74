// The live registry: an immutable snapshot of lab.yaml, reloaded when the file changes. A reload
// that fails keeps the previous snapshot (a typo must not lock every device out) and is logged.
// Listeners get (next, previous) so the broker can disconnect devices that were disabled or removed.
import { EventEmitter } from 'node:events';
import { type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeRegistryFile } from './file.js';
import { readRegistryFileOffThread } from './read-off-thread.js';
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

export function createRegistry(deps: { file: string; pollMs: number; log: Logger }): Registry {
  const { file, pollMs, log } = deps;
  const events = new EventEmitter();
  let snapshot: RegistrySnapshot | undefined;
  let watching: StatWatcher | undefined;
  let reloads = 0;
  let reloading: Promise<boolean> | undefined;

  const reload = async (): Promise<boolean> => {
    try {
      const next = toSnapshot(await readRegistryFileOffThread(file));
      const previous = snapshot;
      snapshot = next;
      reloads++;
      log.info({ file, devices: next.devices.size, accounts: next.accounts.size }, 'registry reloaded');
      if (previous) events.emit('changed', next, previous);
      return true;
    } catch (err) {
      log.error(
        { file, err: (err as Error).message },
        'registry reload failed; keeping the previous registry',
      );
      return false;
    }
  };

  return {
    get reloads() {
      return reloads;
    },
    async start() {
      let data: RegistryData;
      try {
        data = await readRegistryFileOffThread(file);
      } catch (err) {
        if (!(err instanceof GatewayError && err.code === 'LL_REGISTRY_NOT_FOUND')) throw err;
        // A fresh lab: an empty registry lets nobody in until devices are added, and is watched from now on.
        await writeRegistryFile(file, EMPTY_REGISTRY);
        log.warn(
          { file },
          'registry file did not exist: created an empty one; add devices with `livinglab devices add`',
        );
        data = EMPTY_REGISTRY;
      }
      snapshot = toSnapshot(data);
      log.info({ file, devices: snapshot.devices.size, accounts: snapshot.accounts.size }, 'registry loaded');
      // Polling (not fs.watch) survives the atomic rename writers use and works on network mounts.
      watching = watchFile(file, { interval: pollMs, persistent: false }, (curr, prev) => {
        if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
        if (curr.nlink === 0) {
          log.warn({ file }, 'registry file disappeared; keeping the last registry');
          return;
        }
        reloading ??= reload().finally(() => {
          reloading = undefined;
        });
      });
    },
    async stop() {
      if (watching) unwatchFile(file);
      watching = undefined;
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
