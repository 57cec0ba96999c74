// The one place where the parts are wired, and nothing else: each part comes from its own module,
// created here after what it needs, started in that order and stopped in reverse: stop accepting,
// let the messages under way reach the spool, give the drain the shutdown deadline, keep the rest
// in the spool. A new listener, message source, job or page is one import and one call here.
import { createBroker } from './broker/broker.js';
import { resolveDataPaths } from './config/data-paths.js';
import type { Config } from './config/schema.js';
import { createGatewayMetrics } from './http/gateway-metrics.js';
import { listenHttp } from './http/listen.js';
import { buildHttp } from './http/server.js';
import { createStatusReports } from './http/status.js';
import { createFeedbackBudget, MAX_FEEDBACK_BYTES } from './ingest/feedback.js';
import { createPipeline, warnDevicesWithoutSchema } from './ingest/pipeline.js';
import type { MessageSource } from './ingest/source.js';
import { createLiveness } from './jobs/liveness.js';
import { checkJobSchedules, registerJobs } from './jobs/register.js';
import { createScheduler } from './jobs/scheduler.js';
import { createLogger, type Logger } from './log.js';
import { createAuditLog } from './query/audit.js';
import { createHashPool } from './registry/hash-pool.js';
import { createPasswordVerifier } from './registry/passwords.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { statusTopic } from './registry/topics.js';
import { loadSchemas } from './schemas/load.js';
import type { SchemaSet } from './schemas/types.js';
import { createStorage, type Storage } from './storage/from-config.js';
import { createQueueSink } from './storage/queue-sink.js';
import type { SpoolOptions } from './storage/spool/index.js';

/** The wired gateway: start(), stop(), the bound ports, and its parts for tests and the CLI. */
export type App = ReturnType<typeof buildApp>;

/** The message sources and what they feed: the embedded broker, liveness, feedback and the pipeline. */
function wireIngestion(
  config: Config,
  log: Logger,
  registry: Registry,
  storage: Storage,
  schemas: SchemaSet,
) {
  const child = (module: string) => log.child({ module });
  // Logins hash on their own thread, off the spool's libuv pool (docs/architecture.md, Pitfalls).
  const hashPool = createHashPool({ maxPending: config.auth.maxPendingVerifications });
  const verifier = createPasswordVerifier({ hash: hashPool.hash });
  const broker = createBroker({ config, registry, verifier, log: child('broker') });
  const sources: MessageSource[] = [broker];
  const liveness = createLiveness({
    registry,
    dataDir: config.dataDir,
    log: child('jobs.liveness'),
    publishStatus: (d, s) => broker.publish(statusTopic(d), s, { retain: true, qos: 1 }),
    webhook: config.jobs.liveness.webhook,
  });
  // Room for the largest feedback message: else the delivery itself would be skipped, uncounted here.
  const isBackedUp = (deviceId: string) => broker.isBackedUp(deviceId, MAX_FEEDBACK_BYTES);
  const feedbackBudget = createFeedbackBudget({ ...config.feedback, isBackedUp });
  const pipeline = createPipeline({
    schemas,
    sink: createQueueSink(storage.queue),
    rejects: storage.rejects,
    feedbackBudget,
    window: config.time,
    sendFeedback: (topic, payload) => broker.publish(topic, payload),
    maxBatchReadings: config.ingest.maxBatchReadings,
    onReceived: (deviceId) => liveness.observe(deviceId),
    onBattery: (deviceId, level) => liveness.observeBattery(deviceId, level),
    log: child('ingest.pipeline'),
  });
  return { hashPool, verifier, broker, sources, liveness, feedbackBudget, pipeline };
}

export function buildApp(
  config: Config,
  // openSpoolFile: the spool's file seam, for tests that inject disk faults.
  opts: { log?: Logger; openSpoolFile?: SpoolOptions['openFile'] } = {},
) {
  const log = opts.log ?? createLogger({ level: config.logLevel, format: config.logFormat });
  checkJobSchedules(config.jobs);
  const schemas = loadSchemas(config.schemasDir);
  const registry = createRegistry({
    file: config.registry,
    pollMs: config.registryPollMs,
    log: log.child({ module: 'registry' }),
  });
  const storage = createStorage(config, log, opts.openSpoolFile);
  const { writer, queue, rejects, drain } = storage;
  const ingestion = wireIngestion(config, log, registry, storage, schemas);
  const { broker, sources, liveness, pipeline } = ingestion;
  const scheduler = createScheduler({ log: log.child({ module: 'jobs' }) });
  const metrics = createGatewayMetrics({ ...ingestion, ...storage, source: broker, registry, scheduler });
  drain.stats.onWriteLatency = metrics.observeWriteLatency;
  let started = false;
  const { url: influxUrl, db, api } = config.influx;
  const status = { registry, queue, drain, writer, influxUrl, source: broker, liveness, pipeline };
  const reports = createStatusReports({ ...status, isStarted: () => started });
  const audit = createAuditLog(resolveDataPaths(config.dataDir).auditLog);
  const research = { registry: () => registry.current().data, schemas, audit, influxUrl, db };
  const http = buildHttp({
    ...reports,
    metrics: metrics.registry,
    log: log.child({ module: 'http' }),
    research: { ...research, verifier: createPasswordVerifier() },
  });
  let httpPort = 0;
  let statsTimer: NodeJS.Timeout | undefined;

  const start = async () => {
    await registry.start();
    warnDevicesWithoutSchema(registry.current().devices.values(), schemas, log);
    await storage.start();
    for (const source of sources) await source.start(pipeline);
    httpPort = await listenHttp(http, config);
    registerJobs({ config, scheduler, liveness, registry, schemas, rejects, log });
    statsTimer = setInterval(() => reports.logStats(log), 60_000);
    statsTimer.unref();
    started = true;
    const spool = config.spool.enabled;
    log.info({ mqttPort: broker.port, httpPort, influx: influxUrl, api, spool }, 'gateway started');
  };

  const stop = async () => {
    clearInterval(statsTimer);
    const wasStarted = started;
    started = false;
    await scheduler.stop();
    await http.close().catch(() => undefined);
    // Stop accepting: close the listeners and the connections; then finish the appends under way.
    for (const source of sources.toReversed()) await source.stop();
    await ingestion.hashPool.stop();
    await pipeline.settle();
    await storage.stop(wasStarted ? config.shutdownTimeoutMs : undefined);
    await registry.stop();
    const left = queue.stats.unconfirmedRecords;
    if (wasStarted)
      log.info({ pointsWritten: drain.stats.pointsWritten, recordsLeftInSpool: left }, 'gateway stopped');
  };

  const parts = { config, log, broker, registry, schemas, pipeline, queue, drain, writer, rejects };
  return {
    ...{ ...parts, liveness, scheduler, start, stop },
    get mqttPort() {
      return broker.port;
    },
    get httpPort() {
      return httpPort;
    },
  };
}
