// The storage parts as the configuration asks for them: the InfluxDB writer (v1 or v2), the spool
// (or, with the spool disabled, a memory queue), the rejects log and the drain, started and
// stopped in their order. Wiring only: every rule lives in the part it belongs to.
import { resolveDataPaths } from '../config/data-paths.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { createDrain, type Drain } from './drain.js';
import { createInfluxV1Writer } from './influx-v1.js';
import { createInfluxV2Writer } from './influx-v2.js';
import { createMemoryQueue } from './memory-queue.js';
import type { RecordQueue } from './queue.js';
import { createRejectsLog, type RejectsLog } from './rejects-log.js';
import { createSpool, type Spool, type SpoolOptions } from './spool/index.js';
import type { Writer } from './writer.js';

export interface Storage {
  readonly writer: Writer;
  readonly spool: Spool | undefined;
  readonly queue: RecordQueue;
  readonly rejects: RejectsLog;
  readonly drain: Drain;
  /** Opens the rejects log, the spool (replaying it) and the database, then starts the drain. */
  start(): Promise<void>;
  /** Gives the drain `deadlineMs` (if it was started), then closes the spool, rejects log and writer. */
  stop(drainDeadlineMs: number | undefined): Promise<void>;
}

export function createWriter(config: Config, log: Logger): Writer {
  const { influx } = config;
  if (influx.api === 'v2') {
    return createInfluxV2Writer({
      url: influx.url,
      org: influx.org,
      bucket: influx.bucket,
      token: influx.token,
      timeoutMs: influx.timeoutMs,
      log,
    });
  }
  return createInfluxV1Writer({
    url: influx.url,
    db: influx.db,
    username: influx.username,
    password: influx.password,
    timeoutMs: influx.timeoutMs,
  });
}

/** Opens the spool (or warns that there is none), then the database: with a spool the gateway
 * can accept readings while InfluxDB is still down; without one it cannot. */
async function openSpoolAndWriter(spool: Spool | undefined, writer: Writer, log: Logger): Promise<void> {
  if (!spool)
    log.warn(
      'spool disabled: acknowledged readings are held in memory only and are lost on a crash or restart',
    );
  const replay = await spool?.start();
  if (replay && replay.cutBytes > 0)
    log.warn({ cutBytes: replay.cutBytes }, 'spool had a torn tail; cut and kept under spool/corrupt');
  await writer.start().catch((err: Error) => {
    if (!spool) throw err;
    log.warn({ err }, 'InfluxDB not reachable at start; readings are kept in the spool until it is');
  });
}

export function createStorage(
  config: Config,
  log: Logger,
  openSpoolFile?: SpoolOptions['openFile'],
): Storage {
  const child = (module: string) => log.child({ module });
  const writer = createWriter(config, child(`storage.${config.influx.api}`));
  const spool = config.spool.enabled
    ? createSpool({
        dir: resolveDataPaths(config.dataDir).spool,
        maxBytes: config.spool.maxBytes,
        segmentBytes: config.spool.segmentBytes,
        log: child('storage.spool'),
        ...(openSpoolFile ? { openFile: openSpoolFile } : {}),
      })
    : undefined;
  const queue: RecordQueue = spool ?? createMemoryQueue({ maxBytes: config.spool.maxBytes });
  const rejects = createRejectsLog({
    dataDir: config.dataDir,
    maxBytesPerClientPerDay: config.rejects.maxBytesPerDevicePerDay,
    log: child('storage.rejects'),
  });
  const drain = createDrain({
    queue,
    writer,
    rejects,
    log: child('storage.drain'),
    batchSize: config.writer.batchSize,
    flushIntervalMs: config.writer.flushIntervalMs,
    concurrency: config.writer.concurrency,
    backoff: { baseMs: 250, maxMs: config.writer.maxRetryDelayMs },
  });
  return {
    writer,
    spool,
    queue,
    rejects,
    drain,
    async start() {
      await rejects.start();
      await openSpoolAndWriter(spool, writer, log);
      drain.start();
    },
    async stop(drainDeadlineMs) {
      // The drain always stops before the spool closes under it: after a start that failed half-way
      // (a port in use) its workers otherwise kept reading a closed spool in a tight loop and the
      // process spun at 100 % of a core, deaf to SIGTERM. Without a deadline it flushes nothing.
      await drain.stop(drainDeadlineMs ?? 0);
      await spool?.stop();
      await rejects.stop().catch(() => undefined);
      await writer.stop();
    },
  };
}
