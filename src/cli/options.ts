// Flags shared by the commands that reach a gateway's files and services, and their mapping onto
// the configuration schema. Flag values are handed to loadConfig, which validates them all at once.
import type { Command } from 'commander';
import { type ConfigInput, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

export function addRegistryOption(cmd: Command): Command {
  return cmd
    .option('--registry <file>', 'device registry file (default: lab.yaml, or LIVINGLAB_REGISTRY)')
    .option('--config <file>', 'YAML configuration file (see livinglab.example.yaml)');
}

export function addServeOptions(cmd: Command): Command {
  return addRegistryOption(cmd)
    .option('--mqtt-port <port>', 'MQTT TCP port (default 1883)')
    .option('--mqtt-host <address>', 'address the MQTT listener binds to (default 0.0.0.0)')
    .option('--http-port <port>', 'HTTP port for /healthz (default 8080)')
    .option('--http-host <address>', 'address the HTTP server binds to (default 0.0.0.0)')
    .option('--influx-url <url>', 'InfluxDB 1.x URL (default http://127.0.0.1:8086)')
    .option('--influx-db <name>', 'InfluxDB database, created if missing (default livinglab)')
    .option('--influx-api <v1|v2>', 'write API: v1 (/write) or v2 (/api/v2/write) (default v1)')
    .option('--influx-org <org>', 'InfluxDB organisation (v2)')
    .option('--influx-bucket <bucket>', 'InfluxDB bucket (v2)')
    .option('--influx-token <token>', 'InfluxDB API token (v2); better: LIVINGLAB_INFLUX_TOKEN')
    .option(
      '--spool-max <size>',
      'spool size limit, e.g. 1GiB; when full, acknowledgements pause (default 1GiB)',
    )
    .option('--no-spool', 'keep accepted readings in memory only (loses data on a crash; for measurements)')
    .option('--write-concurrency <n>', 'InfluxDB writes in flight at once (default 2)')
    .option('--shutdown-timeout <duration>', 'how long to keep writing to InfluxDB on SIGTERM (default 10s)')
    .option('--data-dir <dir>', 'folder for the rejects log (default ./data)')
    .option('--schemas-dir <dir>', 'device schema folder (default: the bundled device-schemas/)')
    .option('--max-packet-size <bytes>', 'largest MQTT packet accepted (default 262144)')
    .option('--batch-size <points>', 'points per InfluxDB write (default 5000)')
    .option('--flush-interval <duration>', 'longest wait before buffered points are written (default 1s)')
    .option('--max-age <duration>', 'oldest reading accepted, e.g. 7d (default 7d)')
    .option('--max-future <duration>', 'furthest a reading may be ahead of the gateway clock (default 5m)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)');
}

const int = (v: unknown) =>
  typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : (v as string | undefined);

export interface CommonFlags {
  registry?: string;
  config?: string;
  mqttPort?: string;
  mqttHost?: string;
  httpPort?: string;
  httpHost?: string;
  influxUrl?: string;
  influxDb?: string;
  influxApi?: string;
  influxOrg?: string;
  influxBucket?: string;
  influxToken?: string;
  spoolMax?: string;
  spool?: boolean;
  writeConcurrency?: string;
  shutdownTimeout?: string;
  dataDir?: string;
  schemasDir?: string;
  maxPacketSize?: string;
  batchSize?: string;
  flushInterval?: string;
  maxAge?: string;
  maxFuture?: string;
  logLevel?: string;
}

export function configFromFlags(flags: CommonFlags, env: Record<string, string | undefined>): Config {
  const input: ConfigInput = {
    registry: flags.registry,
    dataDir: flags.dataDir,
    schemasDir: flags.schemasDir,
    logLevel: flags.logLevel,
    mqtt: { port: int(flags.mqttPort), host: flags.mqttHost, maxPacketSize: int(flags.maxPacketSize) },
    http: { port: int(flags.httpPort), host: flags.httpHost },
    influx: {
      url: flags.influxUrl,
      db: flags.influxDb,
      api: flags.influxApi,
      org: flags.influxOrg,
      bucket: flags.influxBucket,
      token: flags.influxToken,
    },
    writer: {
      batchSize: int(flags.batchSize),
      flushInterval: flags.flushInterval,
      concurrency: int(flags.writeConcurrency),
    },
    // commander sets spool=true by default for --no-spool; only an explicit --no-spool overrides the config.
    spool: { maxSize: flags.spoolMax, enabled: flags.spool === false ? false : undefined },
    shutdownTimeout: flags.shutdownTimeout,
    time: { maxAge: flags.maxAge, maxFuture: flags.maxFuture },
  };
  return loadConfig({ ...(flags.config ? { file: flags.config } : {}), env, flags: input });
}
