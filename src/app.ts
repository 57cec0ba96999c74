// The one place where the parts are wired. Starts them in dependency order (registry, schemas,
// InfluxDB, sinks, broker, HTTP) and stops them in reverse, so that everything accepted before the
// broker closes is flushed to InfluxDB before the process exits.

import { type Broker, createBroker } from './broker/broker.js';
import type { Config } from './config/schema.js';
import { GatewayError } from './errors.js';
import { buildHttp } from './http/server.js';
import { createPipeline, type Pipeline } from './ingest/pipeline.js';
import { rejection } from './ingest/record.js';
import { createLogger, type Logger } from './log.js';
import { createPasswordVerifier } from './registry/passwords.js';
import { createRegistry, type Registry } from './registry/registry.js';
import { loadSchemas } from './schemas/load.js';
import type { SchemaSet } from './schemas/types.js';
import { type Batcher, createBatcher } from './storage/batcher.js';
import { createInfluxV1Writer } from './storage/influx-v1.js';
import { createRejectsLog, type RejectsLog } from './storage/rejects-log.js';

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
  readonly batcher: Batcher;
  readonly rejects: RejectsLog;
}

export function buildApp(config: Config, opts: { log?: Logger } = {}): App {
  const log = opts.log ?? createLogger({ level: config.logLevel });
  const schemas = loadSchemas(config.schemasDir);
  const registry = createRegistry({
    file: config.registry,
    pollMs: config.registryPollMs,
    log: log.child({ module: 'registry' }),
  });
  const writer = createInfluxV1Writer({ ...config.influx, schemas });
  const batcher = createBatcher({
    writer,
    batchSize: config.writer.batchSize,
    flushIntervalMs: config.writer.flushIntervalMs,
    log: log.child({ module: 'storage.batcher' }),
  });
  const rejects = createRejectsLog({ dataDir: config.dataDir });
  // The broker and the pipeline need each other (publish ↔ onPublish); the late binding is here only.
  let broker: Broker | undefined;
  const pipeline = createPipeline({
    schemas,
    sink: batcher,
    rejects,
    sendFeedback: (topic, payload) => broker?.publish(topic, payload) ?? Promise.resolve(),
    window: config.time,
    maxBatchReadings: config.ingest.maxBatchReadings,
    log: log.child({ module: 'ingest.pipeline' }),
  });
  const b = createBroker({
    config,
    registry,
    verifier: createPasswordVerifier(),
    log: log.child({ module: 'broker' }),
    onPublish: async (msg) => {
      const verdict = await pipeline.accept(msg);
      return { forward: verdict.rejections.length === 0 };
    },
    onOversize: ({ clientId, declared }) => {
      rejects
        .append({
          receivedAt: new Date().toISOString(),
          clientId: clientId ?? '',
          topic: '',
          rejections: [
            rejection(
              'too-large',
              `packet of ${declared} bytes exceeds the ${config.mqtt.maxPacketSize}-byte maximum; connection closed`,
            ),
          ],
          payload: Buffer.alloc(0),
        })
        .catch((err: Error) => log.error({ err: err.message }, 'rejects log append failed'));
    },
  });
  broker = b;
  const startedAt = Date.now();
  const http = buildHttp({
    health: () => ({
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      connectedClients: b.connectedClients,
    }),
  });
  let httpPort = 0;
  let started = false;

  return {
    config,
    log,
    broker: b,
    registry,
    schemas,
    pipeline,
    batcher,
    rejects,
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
      await writer.start();
      await rejects.start();
      batcher.start();
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
      started = true;
      log.info(
        { mqttPort: b.port, httpPort, influx: config.influx.url, db: config.influx.db },
        'gateway started',
      );
    },
    async stop() {
      if (!started) {
        await Promise.allSettled([http.close(), b.stop(), registry.stop()]);
        return;
      }
      started = false;
      await http.close();
      await b.stop();
      await batcher.stop();
      await rejects.stop();
      await writer.stop();
      await registry.stop();
      log.info({ written: batcher.written }, 'gateway stopped');
    },
  };
}
