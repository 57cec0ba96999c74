// The one place where the parts are wired, and nothing else: each part comes from its own module,
// created here after what it needs, started in that order and stopped in reverse: stop accepting,
// let the messages under way reach the spool, give the drain the shutdown deadline, keep the rest
// in the spool. A new listener, message source, job or page is one import and one call here.
import { type Broker, createBroker } from './broker/broker.js';
import { createMosquittoSync } from './broker/mosquitto-sync.js';
import type { Config } from './config/schema.js';
import { resolveTimeZone } from './config/time-zone.js';
import { GatewayError } from './errors.js';
import { buildBrokerHooksHttp } from './http/broker-hooks.js';
import { createGatewayMetrics } from './http/gateway-metrics.js';
import { listenHttp } from './http/listen.js';
import { buildOpsHttp, isLoopback } from './http/ops.js';
import { httpsServingFor } from './http/secure.js';
import { buildHttp } from './http/server.js';
import { createStatusReports } from './http/status.js';
import { createTokenGuard, type TokenGuard } from './http/token-guard.js';
import { createFeedbackBudget, MAX_FEEDBACK_BYTES } from './ingest/feedback.js';
import { createPipeline, warnDevicesWithoutSchema } from './ingest/pipeline.js';
import type { MessageSource } from './ingest/source.js';
import { createExternalSource, type ExternalSource } from './ingest/sources/external.js';
import { createLiveness } from './jobs/liveness.js';
import { checkJobSchedules, createJobScheduler, registerJobs } from './jobs/register.js';
import { createLogger, type Logger } from './log.js';
import { auditLogOptions, createAuditLog } from './query/audit.js';
import { createHashPool } from './registry/hash-pool.js';
import { createPasswordLogin, loginBackoffOptions } from './registry/login.js';
import { createPasswordVerifier, type PasswordVerifier } from './registry/passwords.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { secretsFileFor } from './registry/secrets-file.js';
import { statusTopic } from './registry/topics.js';
import { loadSchemas } from './schemas/load.js';
import type { SchemaSet } from './schemas/types.js';
import { createStorage, type Storage } from './storage/from-config.js';
import { influxReadTarget, probeReadAccess } from './storage/influxql.js';
import { createQueueSink } from './storage/queue-sink.js';
import type { SpoolOptions } from './storage/spool/index.js';
import { loadTlsMaterial, type TlsMaterial } from './tls/material.js';

/** The wired gateway: start(), stop(), the bound ports, and its parts for tests and the CLI. */
export type App = ReturnType<typeof buildApp>;

/**
 * The message source and what they feed: the embedded broker, or an external broker
 * (`--source external`), liveness, feedback and the pipeline. The embedded broker is created in
 * both modes (it does no I/O until started) so its ports and guard counters read 0 in external mode.
 */
function wireIngestion(
  config: Config,
  log: Logger,
  registry: Registry,
  storage: Storage,
  schemas: SchemaSet,
  opts: { tlsMaterial: () => TlsMaterial | undefined; brokerPassword?: string },
) {
  const { tlsMaterial } = opts;
  const child = (module: string) => log.child({ module });
  // Logins hash on their own thread, off the spool's libuv pool (docs/architecture.md, Pitfalls).
  const hashPool = createHashPool({ maxPending: config.auth.maxPendingVerifications });
  const verifier = createPasswordVerifier({ hash: hashPool.hash });
  // Liveness decides every device's retained status; created below, called only once the broker runs.
  const broker = createBroker({
    ...{ config, registry, verifier, log: child('broker'), tlsMaterial },
    onSession: (device, event) => liveness.session(device, event),
    beforeListening: () => liveness.restoreStatuses(),
  });
  const external: ExternalSource | undefined =
    config.source === 'external'
      ? createExternalSource({
          config,
          registry,
          log: child('ingest.external'),
          password: opts.brokerPassword,
          // The leader judges silence: it must hear every device, not only its share.
          ...(config.jobs.leader && config.jobs.liveness.enabled
            ? { onSighting: (id: string) => liveness.observe(id) }
            : {}),
        })
      : undefined;
  const source: MessageSource = external ?? broker;
  const sources: MessageSource[] = [source];
  const liveness = createLiveness({
    registry,
    dataDir: config.dataDir,
    log: child('jobs.liveness'),
    publishStatus: (d, s) => source.publish(statusTopic(d), s, { retain: true, qos: 1 }),
    webhook: config.jobs.liveness.webhook,
    speaks: config.jobs.leader,
  });
  // Room for the largest feedback message: else the delivery itself would be skipped, uncounted here.
  const isBackedUp = (deviceId: string) => source.isBackedUp(deviceId, MAX_FEEDBACK_BYTES);
  const feedbackBudget = createFeedbackBudget({ ...config.feedback, isBackedUp });
  const pipeline = createPipeline({
    schemas,
    sink: createQueueSink(storage.queue),
    rejects: storage.rejects,
    feedbackBudget,
    window: config.time,
    sendFeedback: (topic, payload) => source.publish(topic, payload),
    maxBatchReadings: config.ingest.maxBatchReadings,
    onReceived: (deviceId) => liveness.observe(deviceId),
    onBattery: (deviceId, level) => liveness.observeBattery(deviceId, level),
    log: child('ingest.pipeline'),
  });
  // What reports read of the source. Connections are the external broker's business: unknown (null)
  // in that mode, never a misleading 0.
  const sourceView = {
    get connectedClients() {
      return external ? null : broker.connectedClients;
    },
    connectedDevices: () => (external ? null : broker.connectedDevices()),
    get deliveriesDropped() {
      return broker.deliveriesDropped;
    },
    guardStats: broker.guardStats,
    notReady: () => external?.notReady(),
  };
  return { hashPool, verifier, broker, external, sourceView, sources, liveness, feedbackBudget, pipeline };
}

/** The bound ports for the start-up log; WebSocket ports only when those listeners are on. */
function listenerPorts(broker: Broker, httpPort: number, opsPort: number, https: boolean) {
  const { port: mqttPort, tlsPort: mqttsPort, wsPort, wssPort } = broker;
  const ws = { wsPort: wsPort || undefined, wssPort: wssPort || undefined };
  return { mqttPort, mqttsPort, ...ws, httpPort, opsPort, https };
}

/** Where messages come from, for the start-up log (the broker URL without any credentials). */
const sourceFields = (external: ExternalSource | undefined) =>
  external ? { source: external.name, brokerUrl: external.url } : { source: 'embedded' };

/** What buildApp takes beside the configuration. */
export interface AppOptions {
  log?: Logger;
  /** The spool's file seam for disk-fault tests. */
  openSpoolFile?: SpoolOptions['openFile'];
  /** config/load.ts loadOpsToken. */
  opsToken?: string;
  /** The gateway's password on an external broker: config/load.ts loadBrokerPassword. */
  brokerPassword?: string;
  /** The secret the broker auth hooks listener requires: config/load.ts loadBrokerHooksToken. */
  brokerHooksToken?: string;
}

/** /readyz and /metrics tell anyone who can reach them the sites and the fleet's state. */
function checkOpsExposure(config: Config, opsToken: string | undefined): void {
  const { host } = config.listeners.ops;
  if (isLoopback(host) || opsToken) return;
  throw new GatewayError(
    'LL_OPS_TOKEN_MISSING',
    `the ops listener (/readyz, /metrics) would listen on ${host}, beyond this machine, without a token: set LIVINGLAB_OPS_TOKEN or listeners.ops.tokenFile, or bind listeners.ops.host to 127.0.0.1`,
  );
}

/** One guard for every HTTP credential: bad tokens from one address slow that address down. */
function createHttpGuard(config: Config, log: Logger) {
  const { backoffBaseMs: baseMs, backoffMaxMs: maxMs, tokenDelayAfter, tokenRefuseAfter } = config.auth;
  return createTokenGuard({
    ...{ delayAfter: tokenDelayAfter, refuseAfter: tokenRefuseAfter, baseMs, maxMs },
    log: log.child({ module: 'http.auth' }),
  });
}

/**
 * Exports, the daily report and `simulate --verify` read with their own credentials: a refusal
 * found now is a warning at start, not a surprise at the first export or the night's report.
 */
async function warnOfRefusedReads(config: Config, log: Logger): Promise<void> {
  const refused = await probeReadAccess(influxReadTarget(config.influx));
  if (refused)
    log.warn(
      { err: refused },
      'InfluxDB refuses the read credentials: exports and the daily quality report will fail until they are fixed',
    );
}

/** The HTTP side: the main listener (status, research API; HTTPS once TLS is configured) and the ops listener. */
function wireHttp(
  config: Config,
  log: Logger,
  parts: Pick<Parameters<typeof buildHttp>[0], 'health' | 'status' | 'registry'> &
    Pick<Parameters<typeof buildOpsHttp>[0], 'readiness' | 'guard' | 'metrics'> & { schemas: SchemaSet },
  opsToken: string | undefined,
) {
  const verifier = createPasswordVerifier();
  const audit = createAuditLog(auditLogOptions(config));
  const { url: influxUrl, db, auth: influxAuth } = influxReadTarget(config.influx);
  const secretsFile = secretsFileFor(config.registry, config.secretsFile);
  const timeZone = resolveTimeZone(config.timezone);
  const research = {
    ...{ schemas: parts.schemas, audit, influxUrl, db, secretsFile, timeZone },
    ...(influxAuth ? { influxAuth } : {}),
  };
  const https = httpsServingFor(config);
  const http = buildHttp({
    ...parts,
    ...(https ? { https } : {}),
    research,
    verifier,
    log: log.child({ module: 'http' }),
  });
  // A configured token is always asked for; off loopback checkOpsExposure has made sure there is one.
  const ops = buildOpsHttp({ ...parts, token: opsToken, log: log.child({ module: 'http.ops' }) });
  return { http, ops, https };
}

/**
 * The gateway's side of an external broker: the auth hooks listener (listeners.brokerHooks: off by
 * default, never without its secret; passwords checked on the broker's hashing thread and cache)
 * and the Mosquitto files kept in step with the registry (mosquitto.syncDir).
 */
function wireExternalBroker(
  config: Config,
  log: Logger,
  parts: { registry: Registry; verifier: PasswordVerifier; guard: TokenGuard },
  token: string | undefined,
) {
  const { registry, verifier, guard } = parts;
  const mosquittoSync = createMosquittoSync({
    config,
    registry,
    log: log.child({ module: 'broker.mosquitto-sync' }),
  });
  const hooks = config.listeners.brokerHooks;
  if (hooks.enabled && !token)
    throw new GatewayError(
      'LL_BROKER_HOOKS_TOKEN_MISSING',
      'listeners.brokerHooks is enabled but has no secret: set LIVINGLAB_BROKER_HOOKS_TOKEN or listeners.brokerHooks.tokenFile (openssl rand -hex 32), and give the broker the same secret',
    );
  const login = createPasswordLogin({ registry, verifier, backoff: loginBackoffOptions(config) });
  const hooksLog = log.child({ module: 'http.broker-hooks' });
  const http =
    hooks.enabled && token
      ? buildBrokerHooksHttp({ registry, login, token, guard, log: hooksLog })
      : undefined;
  const side = {
    mosquittoSync,
    /** The broker auth hooks listener's port; 0 when it is off. */
    hooksPort: 0,
    start: async () => {
      await mosquittoSync.start();
      const at = { ...hooks, name: 'broker hooks', flag: '--broker-hooks-port' };
      if (!http) return;
      side.hooksPort = await listenHttp(http, at);
      hooksLog.info({ host: hooks.host, port: side.hooksPort }, 'broker auth hooks listening');
    },
    stop: async () => {
      await http?.close();
      await mosquittoSync.stop();
    },
  };
  return side;
}

/** Every part, created in the order each needs the others; nothing is started here. */
function wireParts(config: Config, log: Logger, opts: AppOptions) {
  checkJobSchedules(config.jobs);
  checkOpsExposure(config, opts.opsToken);
  const schemas = loadSchemas(config.schemasDir);
  const registry = createRegistry({
    file: config.registry,
    secretsFile: config.secretsFile,
    pollMs: config.registryPollMs,
    log: log.child({ module: 'registry' }),
  });
  const storage = createStorage(config, log, opts.openSpoolFile);
  // Read in start(), shared by every TLS listener and the certificate-expiry metric.
  const tls: { current?: TlsMaterial } = {};
  const ingestion = wireIngestion(config, log, registry, storage, schemas, {
    tlsMaterial: () => tls.current,
    ...(opts.brokerPassword !== undefined ? { brokerPassword: opts.brokerPassword } : {}),
  });
  const scheduler = createJobScheduler(config, log.child({ module: 'jobs' }));
  const guard = createHttpGuard(config, log);
  const metrics = createGatewayMetrics({
    ...{ ...ingestion, ...storage, source: ingestion.sourceView, registry, scheduler, httpGuard: guard },
    tls: () => tls.current,
    tlsCertFile: config.tls.cert,
  });
  storage.drain.stats.onWriteLatency = metrics.observeWriteLatency;
  const hooksParts = { registry, verifier: ingestion.verifier, guard };
  const externalBroker = wireExternalBroker(config, log, hooksParts, opts.brokerHooksToken);
  return {
    schemas,
    registry,
    storage,
    tls,
    ingestion,
    scheduler,
    guard,
    metrics,
    externalBroker,
  };
}

export function buildApp(config: Config, opts: AppOptions = {}) {
  const log = opts.log ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const parts = wireParts(config, log, opts);
  const { schemas, registry, storage, tls, ingestion, scheduler, guard, metrics, externalBroker } = parts;
  const { writer, queue, rejects, drain } = storage;
  const { broker, external, sourceView, sources, liveness, pipeline } = ingestion;
  let started = false;
  const { url: influxUrl, api } = config.influx;
  const status = { registry, queue, drain, writer, influxUrl, source: sourceView, liveness, pipeline };
  const reports = createStatusReports({ ...status, isStarted: () => started });
  const httpParts = { ...reports, guard, metrics: metrics.registry, registry: () => registry.current().data };
  const { http, ops, https } = wireHttp(config, log, { ...httpParts, schemas }, opts.opsToken);
  let httpPort = 0;
  let opsPort = 0;
  let statsTimer: NodeJS.Timeout | undefined;

  const start = async () => {
    tls.current = await loadTlsMaterial(config, log.child({ module: 'tls' }));
    await registry.start();
    warnDevicesWithoutSchema(registry.current().devices.values(), schemas, log);
    await storage.start().then(() => warnOfRefusedReads(config, log));
    await liveness.start();
    // Hooks first: a broker asks them about this gateway's own login too (compose profile cluster).
    await externalBroker.start();
    for (const source of sources) await source.start(pipeline);
    if (tls.current) https?.use(tls.current);
    httpPort = await listenHttp(http, { ...config.http, name: 'HTTP', flag: '--http-port' });
    opsPort = await listenHttp(ops, { ...config.listeners.ops, name: 'ops', flag: '--ops-port' });
    registerJobs({ config, scheduler, liveness, registry, schemas, rejects, log });
    statsTimer = setInterval(() => reports.logStats(log), 60_000).unref();
    started = true;
    const ports = listenerPorts(broker, httpPort, opsPort, https !== undefined);
    const from = sourceFields(external);
    log.info({ ...ports, ...from, influx: influxUrl, api, spool: config.spool.enabled }, 'gateway started');
  };

  const stop = async () => {
    clearInterval(statsTimer);
    const wasStarted = started;
    started = false;
    await scheduler.stop();
    guard.stop();
    const closing = [http.close(), ops.close(), externalBroker.stop()];
    await Promise.all(closing.map((c) => c.catch(() => undefined)));
    // Stop accepting: close the listeners and the connections; then finish the appends under way.
    for (const source of sources.toReversed()) await source.stop();
    await ingestion.hashPool.stop();
    await pipeline.settle();
    await liveness.stop();
    await storage.stop(wasStarted ? config.shutdownTimeoutMs : undefined);
    await registry.stop();
    tls.current?.stop();
    const left = queue.stats.unconfirmedRecords;
    if (wasStarted)
      log.info({ pointsWritten: drain.stats.pointsWritten, recordsLeftInSpool: left }, 'gateway stopped');
  };

  const exposed = { config, log, broker, registry, schemas, pipeline, queue, drain, writer, rejects };
  return {
    ...{ ...exposed, external, liveness, scheduler, externalBroker, start, stop },
    get mqttPort() {
      return broker.port;
    },
    /** MQTT over WebSocket and secure WebSocket (path /mqtt); 0 when that listener is off. */
    get wsPort() {
      return broker.wsPort;
    },
    get wssPort() {
      return broker.wssPort;
    },
    get httpPort() {
      return httpPort;
    },
    /** 'https' once TLS is configured (unless http.tls is 'off'). */
    httpScheme: https ? 'https' : 'http',
    get opsPort() {
      return opsPort;
    },
  };
}
