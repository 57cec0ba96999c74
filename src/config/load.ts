// Builds the one Config: defaults ← config file ← LIVINGLAB_* environment ← command-line flags.
// The only module that reads process.env (callers pass it in). Errors list every bad value at once
// as `source path: message`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { parseDuration, parseSize } from './duration.js';
import { CONFIG_SCHEMA, type Config } from './schema.js';

export type ConfigInput = { [key: string]: string | number | boolean | ConfigInput | undefined };

interface LeafOption {
  path: string[];
  env: string;
  type: 'string' | 'integer' | 'boolean' | 'duration' | 'enum';
}

type SchemaNode = {
  type?: string | readonly string[];
  properties?: Record<string, SchemaNode>;
  pattern?: string;
  enum?: readonly string[];
};

/** Every leaf option of the schema with its LIVINGLAB_* environment name. */
export function listOptions(): LeafOption[] {
  const out: LeafOption[] = [];
  const walk = (node: SchemaNode, path: string[]) => {
    if (node.properties) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key]);
      return;
    }
    const env = `LIVINGLAB_${path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
    const type = node.enum
      ? 'enum'
      : Array.isArray(node.type)
        ? 'duration'
        : node.type === 'integer'
          ? 'integer'
          : node.type === 'boolean'
            ? 'boolean'
            : 'string';
    out.push({ path, env, type });
  };
  walk(CONFIG_SCHEMA as unknown as SchemaNode, []);
  return out;
}

/** The folder of bundled device schemas (works from src/ under vitest and from dist/). */
export function bundledSchemasDir(): string {
  return join(packageRoot(), 'device-schemas');
}

function setPath(target: ConfigInput, path: string[], value: ConfigInput[string]): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as ConfigInput;
  }
  node[path[path.length - 1] as string] = value;
}

function merge(base: ConfigInput, over: ConfigInput): ConfigInput {
  const out: ConfigInput = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const prev = out[key];
    out[key] =
      typeof value === 'object' && typeof prev === 'object' && prev !== null ? merge(prev, value) : value;
  }
  return out;
}

function fromEnv(env: Record<string, string | undefined>): ConfigInput {
  const out: ConfigInput = {};
  for (const opt of listOptions()) {
    const raw = env[opt.env];
    if (raw === undefined || raw === '') continue;
    let value: string | number | boolean = raw;
    if (opt.type === 'integer' && /^\d+$/.test(raw)) value = Number(raw);
    if (opt.type === 'boolean' && /^(true|false|on|off|1|0)$/i.test(raw)) value = /^(true|on|1)$/i.test(raw);
    setPath(out, opt.path, value);
  }
  return out;
}

function readConfigFile(file: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `cannot read config file ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    const parsed: unknown = parseYaml(text) ?? {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('top level must be a mapping');
    return parsed as ConfigInput;
  } catch (err) {
    throw new GatewayError('LL_CONFIG_INVALID', `${file}: ${(err as Error).message}`, { cause: err });
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateConfig = ajv.compile(CONFIG_SCHEMA);

export interface LoadConfigOptions {
  /** A YAML config file; optional. */
  file?: string;
  /** Usually process.env; only LIVINGLAB_* names are read. */
  env?: Record<string, string | undefined>;
  /** Values from command-line flags, already nested like the schema. */
  flags?: ConfigInput;
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  let input: ConfigInput = {};
  if (opts.file) input = merge(input, readConfigFile(opts.file));
  input = merge(input, fromEnv(opts.env ?? {}));
  input = merge(input, opts.flags ?? {});
  const raw = structuredClone(input) as Record<string, unknown>;
  if (!validateConfig(raw)) {
    const lines = (validateConfig.errors ?? []).map((e) => {
      const where = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
      const extra = e.keyword === 'additionalProperties' ? ` "${String(e.params.additionalProperty)}"` : '';
      return `  ${where}: ${e.message}${extra}`;
    });
    throw new GatewayError('LL_CONFIG_INVALID', `invalid configuration:\n${lines.join('\n')}`);
  }
  const r = raw as {
    registry: string;
    schemasDir: string;
    dataDir: string;
    logLevel: Config['logLevel'];
    mqtt: Record<string, unknown>;
    http: { host: string; port: number };
    auth: {
      maxPendingVerifications: number;
      usernameBackoffAfter: number;
      addressBackoffAfter: number;
      backoffBase: string | number;
      backoffMax: string | number;
    };
    influx: Omit<Config['influx'], 'timeoutMs'> & { timeout: string | number };
    writer: {
      batchSize: number;
      flushInterval: string | number;
      concurrency: number;
      maxRetryDelay: string | number;
    };
    spool: { enabled: boolean; maxSize: string | number; segmentSize: string | number };
    shutdownTimeout: string | number;
    jobs: {
      liveness: Config['jobs']['liveness'];
      report: Config['jobs']['report'];
      housekeeping: { enabled: boolean; schedule: string; retention: string | number };
    };
    time: { maxFuture: string | number; maxAge: string | number };
    ingest: { maxBatchReadings: number };
    feedback: { perMinute: number; burst: number };
    rejects: { maxPerDevicePerDay: string | number };
    registryPoll: string | number;
  };
  const ms = (v: unknown, name: string): number => {
    const parsed = parseDuration(v as string | number);
    if (parsed === undefined)
      throw new GatewayError('LL_CONFIG_INVALID', `${name}: not a duration: ${String(v)}`);
    return parsed;
  };
  const bytes = (v: unknown, name: string): number => {
    const parsed = parseSize(v as string | number);
    if (parsed === undefined)
      throw new GatewayError('LL_CONFIG_INVALID', `${name}: not a size: ${String(v)}`);
    return parsed;
  };
  const { timeout, ...influx } = r.influx;
  const config: Config = {
    registry: r.registry,
    schemasDir: r.schemasDir || bundledSchemasDir(),
    dataDir: r.dataDir,
    logLevel: r.logLevel,
    mqtt: {
      host: r.mqtt.host as string,
      port: r.mqtt.port as number,
      maxPacketSize: r.mqtt.maxPacketSize as number,
      maxConnections: r.mqtt.maxConnections as number,
      connectTimeoutMs: ms(r.mqtt.connectTimeout, 'mqtt.connectTimeout'),
      keepaliveLimit: r.mqtt.keepaliveLimit as number,
      maxConnectPacketSize: r.mqtt.maxConnectPacketSize as number,
      preAuthBufferBudget: bytes(r.mqtt.preAuthBufferBudget, 'mqtt.preAuthBufferBudget'),
      connectRate: r.mqtt.connectRate as number,
      connectBurst: r.mqtt.connectBurst as number,
    },
    auth: {
      maxPendingVerifications: r.auth.maxPendingVerifications,
      usernameBackoffAfter: r.auth.usernameBackoffAfter,
      addressBackoffAfter: r.auth.addressBackoffAfter,
      backoffBaseMs: ms(r.auth.backoffBase, 'auth.backoffBase'),
      backoffMaxMs: ms(r.auth.backoffMax, 'auth.backoffMax'),
    },
    http: { host: r.http.host, port: r.http.port },
    influx: { ...influx, timeoutMs: ms(timeout, 'influx.timeout') },
    writer: {
      batchSize: r.writer.batchSize,
      flushIntervalMs: ms(r.writer.flushInterval, 'writer.flushInterval'),
      concurrency: r.writer.concurrency,
      maxRetryDelayMs: ms(r.writer.maxRetryDelay, 'writer.maxRetryDelay'),
    },
    spool: {
      enabled: r.spool.enabled,
      maxBytes: bytes(r.spool.maxSize, 'spool.maxSize'),
      segmentBytes: bytes(r.spool.segmentSize, 'spool.segmentSize'),
    },
    shutdownTimeoutMs: ms(r.shutdownTimeout, 'shutdownTimeout'),
    jobs: {
      liveness: { ...r.jobs.liveness },
      report: { ...r.jobs.report },
      housekeeping: {
        enabled: r.jobs.housekeeping.enabled,
        schedule: r.jobs.housekeeping.schedule,
        retentionMs: ms(r.jobs.housekeeping.retention, 'jobs.housekeeping.retention'),
      },
    },
    time: { maxFutureMs: ms(r.time.maxFuture, 'time.maxFuture'), maxAgeMs: ms(r.time.maxAge, 'time.maxAge') },
    ingest: { maxBatchReadings: r.ingest.maxBatchReadings },
    feedback: { perMinute: r.feedback.perMinute, burst: r.feedback.burst },
    rejects: {
      maxBytesPerDevicePerDay: bytes(r.rejects.maxPerDevicePerDay, 'rejects.maxPerDevicePerDay'),
    },
    registryPollMs: ms(r.registryPoll, 'registryPoll'),
  };
  return deepFreeze(config);
}
