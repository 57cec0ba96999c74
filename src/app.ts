// The one place where the parts are wired. Starts them in dependency order (registry, schemas,
// database, spool and drain, broker, HTTP) and stops them in reverse: stop accepting, let in-flight
// spool appends finish, give the drain the shutdown deadline, keep the rest in the spool.
import { type Broker, createBroker } from './broker/broker.js';
import { resolveDataPaths } from './config/data-paths.js';
import type { Config } from './config/schema.js';
import { GatewayError } from './errors.js';
import { createMetrics } from './http/metrics.js';
import { buildHttp } from './http/server.js';
import { createFeedbackBudget, MAX_FEEDBACK_BYTES } from './ingest/feedback.js';
import { createPipeline, type Pipeline } from './ingest/pipeline.js';
import { rejection } from './ingest/record.js';
import { runHousekeeping } from './jobs/housekeeping.js';
import { createLiveness, type Liveness } from './jobs/liveness.js';
import { buildQualityReport, writeQualityReport } from './jobs/quality-report.js';
import { createScheduler, type Scheduler } from './jobs/scheduler.js';
import { createLogger, type Logger } from './log.js';
import { createAuditLog } from './query/audit.js';
import { createHashPool } from './registry/hash-pool.js';
import { createPasswordVerifier } from './registry/passwords.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { loadSchemas } from './schemas/load.js';
import type { SchemaSet } from './schemas/types.js';
import { createDrain, type Drain } from './storage/drain.js';
import { createInfluxV1Writer } from './storage/influx-v1.js';
import { createInfluxV2Writer } from './storage/influx-v2.js';
import { createMemoryQueue } from './storage/memory-queue.js';
import type { RecordQueue } from './storage/queue.js';
import { createQueueSink } from './storage/queue-sink.js';
import { createRejectsLog, type RejectsLog } from './storage/rejects-log.js';
import { createSpool, type Spool, type SpoolOptions } from './storage/spool/index.js';
import type { Writer } from './storage/writer.js';

export interface App {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly config: Config;
  readonly log: Logger;
  readonly mqttPort: number;
  readonly httpPort: number;
  readonly broker: Broker;
  readonly registry: Registry;
  readonly schemas: SchemaSet;
  readonly pipeline: Pipeline;
  readonly queue: RecordQueue;
  readonly drain: Drain;
  readonly writer: Writer;
  readonly rejects: RejectsLog;
  readonly liveness: Liveness;
  readonly scheduler: Scheduler;
}

function createWriter(config: Config, log: Logger): Writer {
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

export function buildApp(
  config: Config,
  // openSpoolFile: the spool's file seam, for tests that inject disk faults.
  opts: { log?: Logger; openSpoolFile?: SpoolOptions['openFile'] } = {},
): App {
  const log = opts.log ?? createLogger({ level: config.logLevel });
  const schemas = loadSchemas(config.schemasDir);
  const registry = createRegistry({
    file: config.registry,
    pollMs: config.registryPollMs,
    log: log.child({ module: 'registry' }),
  });
  const writer = createWriter(config, log.child({ module: `storage.${config.influx.api}` }));
  const spool: Spool | undefined = config.spool.enabled
    ? createSpool({
        dir: resolveDataPaths(config.dataDir).spool,
        maxBytes: config.spool.maxBytes,
        segmentBytes: config.spool.segmentBytes,
        log: log.child({ module: 'storage.spool' }),
        ...(opts.openSpoolFile ? { openFile: opts.openSpoolFile } : {}),
      })
    : undefined;
  const queue: RecordQueue = spool ?? createMemoryQueue({ maxBytes: config.spool.maxBytes });
  const rejects = createRejectsLog({
    dataDir: config.dataDir,
    maxBytesPerClientPerDay: config.rejects.maxBytesPerDevicePerDay,
    log: log.child({ module: 'storage.rejects' }),
  });
  const drain = createDrain({
    queue,
    writer,
    rejects,
    log: log.child({ module: 'storage.drain' }),
    batchSize: config.writer.batchSize,
    flushIntervalMs: config.writer.flushIntervalMs,
    concurrency: config.writer.concurrency,
    backoff: { baseMs: 250, maxMs: config.writer.maxRetryDelayMs },
  });
  // The broker and the pipeline need each other (publish ↔ onPublish); the late binding is here only.
  let broker: Broker | undefined;
  const feedbackBudget = createFeedbackBudget({
    perMinute: config.feedback.perMinute,
    burst: config.feedback.burst,
    // Room for the largest feedback message: else the delivery itself would be skipped, uncounted here.
    isBackedUp: (deviceId) => broker?.isBackedUp(deviceId, MAX_FEEDBACK_BYTES) ?? false,
  });
  const pipeline = createPipeline({
    schemas,
    sink: createQueueSink(queue),
    rejects,
    sendFeedback: (topic, payload) => broker?.publish(topic, payload) ?? Promise.resolve(),
    feedbackBudget,
    window: config.time,
    maxBatchReadings: config.ingest.maxBatchReadings,
    onAccepted: (deviceId, points) => {
      const battery = points[points.length - 1]?.fields.battery;
      if (battery && battery.kind === 'integer') liveness.observeBattery(deviceId, battery.value);
    },
    log: log.child({ module: 'ingest.pipeline' }),
  });
  const scheduler = createScheduler({ log: log.child({ module: 'jobs' }) });
  const liveness = createLiveness({
    registry,
    dataDir: config.dataDir,
    log: log.child({ module: 'jobs.liveness' }),
    publishStatus: (device, status) =>
      broker?.publish(`lab/${device.site}/${device.type}/${device.id}/status`, status, {
        retain: true,
        qos: 1,
      }) ?? Promise.resolve(),
    ...(config.jobs.liveness.webhook ? { webhook: config.jobs.liveness.webhook } : {}),
  });
  // Messages between authorizePublish and their spool append: shutdown waits for them.
  const inFlight = new Set<Promise<unknown>>();
  // MQTT logins hash on their own thread, off the libuv pool the spool writes on (DESIGN §6).
  const hashPool = createHashPool({ maxPending: config.auth.maxPendingVerifications });
  const mqttVerifier = createPasswordVerifier({ hash: hashPool.hash });
  const b = createBroker({
    config,
    registry,
    verifier: mqttVerifier,
    log: log.child({ module: 'broker' }),
    onPublish: async (msg) => {
      if (msg.identity.kind === 'device') liveness.observe(msg.identity.id);
      const accepting = pipeline.accept(msg);
      inFlight.add(accepting);
      try {
        const verdict = await accepting;
        return { forward: verdict.rejections.length === 0 };
      } finally {
        inFlight.delete(accepting);
      }
    },
    onOversize: ({ clientId, declared, limit }) => {
      rejects
        .append({
          receivedAt: new Date().toISOString(),
          clientId: clientId ?? '',
          topic: '',
          rejections: [
            rejection(
              'too-large',
              `packet of ${declared} bytes exceeds the ${limit}-byte maximum; connection closed`,
            ),
          ],
          payload: Buffer.alloc(0),
        })
        .catch((err: Error) => log.error({ err: err.message }, 'rejects log append failed'));
    },
  });
  broker = b;
  const startedAt = Date.now();
  const researchVerifier = createPasswordVerifier();
  const metrics = createMetrics({
    pipeline: () => pipeline.stats,
    drain: () => drain.stats,
    queue: () => queue.stats,
    connectedClients: () => b.connectedClients,
    feedbackDropped: () => feedbackBudget.stats.dropped,
    deliveriesDropped: () => b.deliveriesDropped,
    rejectsNotLogged: () => rejects.notLogged,
    guard: () => ({ ...b.guardStats, hashes: mqttVerifier.stats, hashQueue: hashPool.pending }),
    registryReloads: () => registry.reloads,
    connectedDevices: () => b.connectedDevices(),
    jobs: () => scheduler.stats,
    liveness: () => ({
      silent: liveness.silent.size,
      batteryLow: liveness.batteryLow.size,
      ...liveness.transitions,
    }),
  });
  drain.stats.onWriteLatency = metrics.observeWriteLatency;
  const http = buildHttp({
    health: () => ({
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      connectedClients: b.connectedClients,
    }),
    readiness: async () => {
      const reasons: string[] = [];
      if (!started) reasons.push('starting or stopping');
      try {
        registry.current();
      } catch {
        reasons.push('registry not loaded');
      }
      if (queue.stats.full)
        reasons.push(
          `spool full (${queue.stats.bytes} of ${queue.stats.limitBytes} bytes): not acknowledging`,
        );
      const appendError = queue.stats.appendError;
      if (appendError) reasons.push(appendError);
      if (!(await writer.ping())) reasons.push(`InfluxDB at ${config.influx.url} is not reachable`);
      return reasons;
    },
    metrics: metrics.registry,
    log: log.child({ module: 'http' }),
    research: {
      registry: () => registry.current().data,
      schemas,
      verifier: researchVerifier,
      audit: createAuditLog(resolveDataPaths(config.dataDir).auditLog),
      influxUrl: config.influx.url,
      db: config.influx.db,
    },
    status: () => {
      const connected = new Set(b.connectedDevices().map((d) => d.id));
      const q = queue.stats;
      return {
        devices: [...registry.current().devices.values()].map((d) => ({
          id: d.id,
          type: d.type,
          site: d.site,
          enabled: d.enabled,
          connected: connected.has(d.id),
          silent: liveness.silent.has(d.id),
          lastSeen: liveness.lastSeen(d.id)
            ? new Date(liveness.lastSeen(d.id) as number).toISOString()
            : null,
        })),
        connectedDevices: connected.size,
        silentDevices: liveness.silent.size,
        spool: {
          bytes: q.bytes,
          limitBytes: q.limitBytes,
          full: q.full,
          unwrittenRecords: q.unconfirmedRecords,
          oldestUnwrittenSeconds: q.oldestUnconfirmedAt
            ? Math.round((Date.now() - q.oldestUnconfirmedAt) / 1000)
            : 0,
        },
        lastWriteAt: drain.stats.lastWriteAt ? new Date(drain.stats.lastWriteAt).toISOString() : null,
        pointsWritten: drain.stats.pointsWritten,
        rejectsLastHour: pipeline.rejectedLastHour(),
      };
    },
  });
  let httpPort = 0;
  let started = false;
  let statsTimer: NodeJS.Timeout | undefined;

  const logStats = () => {
    const q = queue.stats;
    log.info(
      {
        spoolBytes: q.bytes,
        spoolFull: q.full,
        unwrittenRecords: q.unconfirmedRecords,
        oldestUnwrittenSeconds: q.oldestUnconfirmedAt
          ? Math.round((Date.now() - q.oldestUnconfirmedAt) / 1000)
          : 0,
        pointsWritten: drain.stats.pointsWritten,
        pointsRejectedByDatabase: drain.stats.pointsRejected,
        writeRetries: drain.stats.writeRetries,
        messages: pipeline.stats.messages,
        readingsAccepted: pipeline.stats.readingsAccepted,
        connectedClients: b.connectedClients,
      },
      'stats',
    );
  };

  return {
    config,
    log,
    broker: b,
    registry,
    schemas,
    pipeline,
    queue,
    drain,
    writer,
    rejects,
    liveness,
    scheduler,
    get mqttPort() {
      return b.port;
    },
    get httpPort() {
      return httpPort;
    },
    async start() {
      await registry.start();
      for (const d of registry.current().devices.values()) {
        if (!schemas.get(d.type, d.schemaVersion)) {
          log.warn(
            { deviceId: d.id, schema: `${d.type}@${d.schemaVersion}` },
            'device has no loaded schema; its messages will be rejected',
          );
        }
      }
      await rejects.start();
      if (spool) {
        const replay = await spool.start();
        if (replay.cutBytes > 0)
          log.warn({ cutBytes: replay.cutBytes }, 'spool had a torn tail; cut and kept under spool/corrupt');
      } else {
        log.warn(
          'spool disabled: acknowledged readings are held in memory only and are lost on a crash or restart',
        );
      }
      // With a spool the gateway can accept readings while InfluxDB is still down; without one it cannot.
      try {
        await writer.start();
      } catch (err) {
        if (!spool) throw err;
        log.warn(
          { err: (err as Error).message },
          'InfluxDB not reachable at start; readings are kept in the spool until it is',
        );
      }
      drain.start();
      await b.start();
      try {
        await http.listen({ port: config.http.port, host: config.http.host });
      } catch (err) {
        throw new GatewayError(
          'LL_LISTEN_FAILED',
          `HTTP listener on ${config.http.host}:${config.http.port}: ${(err as Error).message} (--http-port)`,
          { cause: err },
        );
      }
      const address = http.server.address();
      httpPort = typeof address === 'object' && address ? address.port : config.http.port;
      if (config.jobs.liveness.enabled)
        scheduler.add('liveness', config.jobs.liveness.schedule, () => liveness.check());
      if (config.jobs.report.enabled) {
        scheduler.add('quality-report', config.jobs.report.schedule, async () => {
          // The report reads through the InfluxDB 1.x query API.
          if (config.influx.api !== 'v1') return;
          const date = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
          const report = await buildQualityReport({
            date,
            devices: registry.current().devices.values(),
            schemas,
            influxUrl: config.influx.url,
            db: config.influx.db,
            dataDir: config.dataDir,
          });
          await writeQualityReport(report, config.dataDir);
        });
      }
      if (config.jobs.housekeeping.enabled) {
        scheduler.add('housekeeping', config.jobs.housekeeping.schedule, async () => {
          await runHousekeeping({
            dataDir: config.dataDir,
            rejects,
            retentionMs: config.jobs.housekeeping.retentionMs,
            log: log.child({ module: 'jobs.housekeeping' }),
          });
        });
      }
      statsTimer = setInterval(logStats, 60_000);
      statsTimer.unref();
      started = true;
      log.info(
        {
          mqttPort: b.port,
          httpPort,
          influx: config.influx.url,
          api: config.influx.api,
          spool: config.spool.enabled,
        },
        'gateway started',
      );
    },
    async stop() {
      clearInterval(statsTimer);
      const wasStarted = started;
      started = false;
      await scheduler.stop();
      await http.close().catch(() => undefined);
      // Stop accepting: close the listener and the connections; then finish the appends under way.
      await b.stop();
      await hashPool.stop();
      await Promise.allSettled([...inFlight]);
      if (wasStarted) await drain.stop(config.shutdownTimeoutMs);
      await spool?.stop();
      await rejects.stop().catch(() => undefined);
      await writer.stop();
      await registry.stop();
      if (wasStarted) {
        const left = queue.stats.unconfirmedRecords;
        log.info({ pointsWritten: drain.stats.pointsWritten, recordsLeftInSpool: left }, 'gateway stopped');
      }
    },
  };
}
