// The rejects log: one NDJSON line per rejected message, with the original payload, so a lab can
// show a vendor exactly what was sent and why it was refused. Append-only, mode 0600 (payloads are
// health data). Written by the pipeline (bad input) and, later, the drain (InfluxDB 4xx).
import { type FileHandle, mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';

export interface RejectEntry {
  receivedAt: string;
  clientId: string;
  topic: string;
  /** Each rejection of this message (one per invalid reading of a batch). */
  rejections: readonly unknown[];
  payload: Buffer;
}

export interface RejectsLog {
  readonly file: string;
  start(): Promise<void>;
  append(entry: RejectEntry): Promise<void>;
  stop(): Promise<void>;
  readonly count: number;
  /** Moves the current log aside as rejects-<time>.ndjson and starts a new one; resolves its name (none if empty). */
  rotate(): Promise<string | undefined>;
}

export function encodePayload(payload: Buffer): { payload: string; payloadEncoding: 'utf8' | 'base64' } {
  const text = payload.toString('utf8');
  // Round-trip check: invalid UTF-8 would be mangled, so keep those bytes as base64.
  return Buffer.byteLength(text) === payload.length && Buffer.from(text, 'utf8').equals(payload)
    ? { payload: text, payloadEncoding: 'utf8' }
    : { payload: payload.toString('base64'), payloadEncoding: 'base64' };
}

export function createRejectsLog(deps: { dataDir: string }): RejectsLog {
  const file = join(deps.dataDir, 'rejects.ndjson');
  let handle: FileHandle | undefined;
  let chain: Promise<void> = Promise.resolve();
  let count = 0;
  return {
    file,
    get count() {
      return count;
    },
    async start() {
      await mkdir(deps.dataDir, { recursive: true, mode: 0o700 });
      handle = await open(file, 'a', 0o600);
    },
    append(entry) {
      const line = `${JSON.stringify({
        receivedAt: entry.receivedAt,
        clientId: entry.clientId,
        topic: entry.topic,
        rejections: entry.rejections,
        ...encodePayload(entry.payload),
      })}\n`;
      if (!handle) return Promise.reject(new Error('rejects log used before start()'));
      // Serialise appends (and rotations) so lines never interleave or land in a closed file.
      const appended = chain.then(async () => {
        if (!handle) throw new Error('rejects log is stopped');
        await handle.appendFile(line, 'utf8');
        count++;
      });
      chain = appended.catch(() => undefined);
      return appended;
    },
    rotate() {
      const rotated = chain.then(async () => {
        if (!handle) return undefined;
        const size = (await handle.stat()).size;
        if (size === 0) return undefined;
        await handle.sync();
        await handle.close();
        const target = join(deps.dataDir, `rejects-${new Date().toISOString().replace(/[:.]/g, '-')}.ndjson`);
        await rename(file, target);
        handle = await open(file, 'a', 0o600);
        return target;
      });
      chain = rotated.then(
        () => undefined,
        () => undefined,
      );
      return rotated;
    },
    async stop() {
      await chain.catch(() => undefined);
      await handle?.sync().catch(() => undefined);
      await handle?.close();
      handle = undefined;
    },
  };
}
