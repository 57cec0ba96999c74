// The JSON Schema of the whole configuration and the Config type it yields. Every option has a
// default and a description; `livinglab.example.yaml` and the LIVINGLAB_* environment names are
// derived from this one schema (see load.ts).

const DURATION_PATTERN = '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?$';
const duration = (def: string, description: string) => ({
  type: ['string', 'integer'],
  pattern: DURATION_PATTERN,
  default: def,
  description,
});

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    registry: { type: 'string', default: 'lab.yaml', description: 'Device registry file (YAML, mode 0600)' },
    schemasDir: {
      type: 'string',
      default: '',
      description: 'Device schema folder (default: the bundled device-schemas/)',
    },
    dataDir: {
      type: 'string',
      default: 'data',
      description: 'Folder for the rejects log and, later, the spool',
    },
    logLevel: {
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      description: 'Log level; payloads are only logged at debug and below',
    },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', default: '0.0.0.0', description: 'Address the MQTT listener binds to' },
        port: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          default: 1883,
          description: 'MQTT TCP port (0: any free port)',
        },
        maxPacketSize: {
          type: 'integer',
          minimum: 1024,
          default: 262144,
          description: 'Largest MQTT packet accepted, in bytes; a larger one closes the connection',
        },
        maxConnections: {
          type: 'integer',
          minimum: 1,
          default: 20000,
          description: 'Most simultaneous MQTT connections',
        },
        connectTimeout: duration('10s', 'Time a new connection has to send CONNECT'),
        keepaliveLimit: {
          type: 'integer',
          minimum: 0,
          default: 1200,
          description: 'Largest keepalive (seconds) a client may ask for',
        },
      },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', default: '0.0.0.0', description: 'Address the HTTP server binds to' },
        port: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          default: 8080,
          description: 'HTTP port (0: any free port)',
        },
      },
    },
    influx: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: {
          type: 'string',
          pattern: '^https?://',
          default: 'http://127.0.0.1:8086',
          description: 'InfluxDB base URL',
        },
        db: {
          type: 'string',
          pattern: '^[A-Za-z0-9_-]+$',
          default: 'livinglab',
          description: 'InfluxDB database (created if missing)',
        },
        username: { type: 'string', default: '', description: 'InfluxDB user (empty: no authentication)' },
        password: { type: 'string', default: '', description: 'InfluxDB password' },
      },
    },
    writer: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        batchSize: {
          type: 'integer',
          minimum: 1,
          maximum: 100000,
          default: 5000,
          description: 'Points per InfluxDB write',
        },
        flushInterval: duration('1s', 'Longest time a point waits before it is written'),
      },
    },
    time: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxFuture: duration('5m', 'Readings stamped further ahead of the receive time are rejected ("time")'),
        maxAge: duration('7d', 'Readings older than this are rejected ("time")'),
      },
    },
    ingest: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxBatchReadings: {
          type: 'integer',
          minimum: 1,
          maximum: 100000,
          default: 1000,
          description: 'Most readings in one {"readings": [...]} message; more is rejected as "too-large"',
        },
      },
    },
    registryPoll: duration('1s', 'How often the registry file is checked for changes'),
  },
} as const;

/** The validated, normalised configuration: durations are milliseconds. Deep-frozen by load.ts. */
export interface Config {
  readonly registry: string;
  readonly schemasDir: string;
  readonly dataDir: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly mqtt: {
    readonly host: string;
    readonly port: number;
    readonly maxPacketSize: number;
    readonly maxConnections: number;
    readonly connectTimeoutMs: number;
    readonly keepaliveLimit: number;
  };
  readonly http: { readonly host: string; readonly port: number };
  readonly influx: {
    readonly url: string;
    readonly db: string;
    readonly username: string;
    readonly password: string;
  };
  readonly writer: { readonly batchSize: number; readonly flushIntervalMs: number };
  readonly time: { readonly maxFutureMs: number; readonly maxAgeMs: number };
  readonly ingest: { readonly maxBatchReadings: number };
  readonly registryPollMs: number;
}
