// Disk faults on cue, injected at the spool's own file seam (SpoolOptions.openFile) over the real
// file system: a failing read, a short write followed by ENOSPC (a disk filling up mid-write), a
// failing truncate. Every call that is not told to fail goes to the real file.
import { open } from 'node:fs/promises';
import type { SpoolFile, SpoolOptions } from '../../src/storage/spool/index.js';

export interface DiskFaults {
  readonly openFile: NonNullable<SpoolOptions['openFile']>;
  /** The read after the next `after` reads of a segment fails with EIO (0: the very next one). */
  failRead(after?: number): void;
  /** Every read of a segment whose number `fail(n)` says fails with EIO (n counts all reads from 1). */
  failReadsWhen(fail: (n: number) => boolean): void;
  /** The next write writes only `bytes` of its data, and the `fullWrites` writes after it fail with ENOSPC. */
  shortWriteThenFull(bytes: number, fullWrites?: number): void;
  /** The next `n` truncates fail with EIO. */
  failTruncates(n: number): void;
  /** The next `n` fsyncs (the spool syncs its folder after creating a segment) fail with EIO. */
  failSyncs(n: number): void;
  /** The next write waits `ms` before it goes to the file (a slow disk), then succeeds. */
  delayNextWrite(ms: number): void;
  readonly injected: { reads: number; writes: number; truncates: number; syncs: number };
  /** Successful fsyncs so far. */
  readonly syncs: number;
}

const fault = (code: string, syscall: string) =>
  Object.assign(new Error(`${code}: injected ${syscall} fault`), { code, syscall });

export function createDiskFaults(): DiskFaults {
  let readCountdown = -1;
  let readRule: ((n: number) => boolean) | undefined;
  let reads = 0;
  let shortWrite: number | undefined;
  let fullWrites = 0;
  let truncateFaults = 0;
  let syncFaults = 0;
  let syncs = 0;
  let writeDelayMs = 0;
  const injected = { reads: 0, writes: 0, truncates: 0, syncs: 0 };

  const wrap = (file: SpoolFile): SpoolFile => ({
    async read(buffer, offset, length, position) {
      reads++;
      const now = readCountdown === 0 || readRule?.(reads) === true;
      if (readCountdown >= 0) readCountdown--;
      if (now) {
        injected.reads++;
        throw fault('EIO', 'read');
      }
      return file.read(buffer, offset, length, position);
    },
    async write(buffer, offset, length) {
      if (writeDelayMs > 0) {
        const ms = writeDelayMs;
        writeDelayMs = 0;
        await new Promise((r) => setTimeout(r, ms));
      }
      if (shortWrite !== undefined) {
        const part = Math.min(shortWrite, length - 1);
        shortWrite = undefined;
        return file.write(buffer, offset, part);
      }
      if (fullWrites > 0) {
        fullWrites--;
        injected.writes++;
        throw fault('ENOSPC', 'write');
      }
      return file.write(buffer, offset, length);
    },
    async truncate(length) {
      if (truncateFaults > 0) {
        truncateFaults--;
        injected.truncates++;
        throw fault('EIO', 'ftruncate');
      }
      return file.truncate(length);
    },
    async sync() {
      if (syncFaults > 0) {
        syncFaults--;
        injected.syncs++;
        throw fault('EIO', 'fsync');
      }
      await file.sync();
      syncs++;
    },
    close: () => file.close(),
  });

  return {
    openFile: async (path, flags, mode) => wrap(await open(path, flags, mode)),
    failRead(after = 0) {
      readCountdown = after;
    },
    failReadsWhen(fail) {
      readRule = fail;
    },
    shortWriteThenFull(bytes, writes = 1) {
      shortWrite = bytes;
      fullWrites = writes;
    },
    failTruncates(n) {
      truncateFaults = n;
    },
    failSyncs(n) {
      syncFaults = n;
    },
    delayNextWrite(ms) {
      writeDelayMs = ms;
    },
    injected,
    get syncs() {
      return syncs;
    },
  };
}
