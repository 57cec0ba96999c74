// The JSON Schema of the whole configuration and the Config type it yields. Every option has a
// default and a description; `livinglab.example.yaml` and the LIVINGLAB_* environment names are
// derived from this one schema (see load.ts).

const DURATION_PATTERN = '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?$';
const SIZE_PATTERN = '^\\d+(\\.\\d+)?\\s*([kKmMgG]i?[bB]|[bB])?$';
const size = (def: string, description: string) => ({
  type: ['string', 'integer'],
  pattern: SIZE_PATTERN,
  default: def,
  description,
});
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
      description: 'Folder for the spool and the rejects log',
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
        maxConnectPacketSize: {
          type: 'integer',
          minimum: 256,
          default: 8192,
          description:
            'Largest CONNECT packet accepted (will message included), in bytes; checked before any credential',
        },
        preAuthBufferBudget: size(
          '16MiB',
          'Bytes all not-yet-authenticated connections together may have sent; over it the largest are closed',
        ),
        connectRate: {
          type: 'integer',
          minimum: 1,
          default: 100,
          description: 'New connections per second allowed from one remote address (sustained)',
        },
        connectBurst: {
          type: 'integer',
          minimum: 1,
          default: 1000,
          description: 'New connections one remote address may open at once before connectRate applies',
        },
      },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxPendingVerifications: {
          type: 'integer',
          minimum: 1,
          default: 1000,
          description:
            'Password checks queued for the hashing thread; more are refused (CONNACK 3, HTTP 503)',
        },
        usernameBackoffAfter: {
          type: 'integer',
          minimum: 1,
          default: 5,
          description:
            'Failed logins of one username before its attempts are refused unchecked for a growing delay',
        },
        addressBackoffAfter: {
          type: 'integer',
          minimum: 1,
          default: 20,
          description: 'Failed logins from one address before its refusals are delayed by a growing delay',
        },
        backoffBase: duration('1s', 'First backoff delay; it doubles with each further failure'),
        backoffMax: duration('30s', 'Longest backoff delay'),
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
        api: {
          enum: ['v1', 'v2'],
          default: 'v1',
          description: 'Write API: v1 (/write; InfluxDB 1.x, 3.x, 2.x compatibility) or v2 (/api/v2/write)',
        },
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
        password: { type: 'string', default: '', description: 'InfluxDB password (v1)' },
        org: { type: 'string', default: '', description: 'InfluxDB organisation (v2)' },
        bucket: { type: 'string', default: '', description: 'InfluxDB bucket (v2)' },
        token: {
          type: 'string',
          default: '',
          description: 'InfluxDB API token (v2); prefer LIVINGLAB_INFLUX_TOKEN to a flag',
        },
        timeout: duration('30s', 'Longest time one write may take before it is retried'),
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
        concurrency: {
          type: 'integer',
          minimum: 1,
          maximum: 16,
          default: 2,
          description: 'Writes in flight at once',
        },
        maxRetryDelay: duration('30s', 'Longest wait between two retries of a failed write'),
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
    feedback: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        perMinute: {
          type: 'integer',
          minimum: 1,
          default: 120,
          description:
            'Feedback messages per minute each device may receive on its rejected topic; the rest are dropped and counted',
        },
        burst: {
          type: 'integer',
          minimum: 1,
          default: 20,
          description: 'Feedback messages a device may receive in a burst before the rate applies',
        },
      },
    },
    rejects: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxPerDevicePerDay: size(
          '8MiB',
          'Bytes of rejects log one device may fill per day (UTC); later rejections are counted, not stored',
        ),
      },
    },
    spool: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: {
          type: 'boolean',
          default: true,
          description:
            'Keep accepted readings in a write-ahead log on disk until InfluxDB has them (off only to measure its cost: loses data on a crash)',
        },
        maxSize: size(
          '1GiB',
          'Spool size limit; when full the gateway stops acknowledging instead of dropping',
        ),
        segmentSize: size('16MiB', 'Size at which the spool starts a new segment file'),
      },
    },
    jobs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        liveness: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: {
              type: 'boolean',
              default: true,
              description: 'Mark devices silent for 3 of their intervals offline',
            },
            schedule: {
              type: 'string',
              default: '* * * * *',
              description: 'When the liveness check runs (cron; seconds allowed)',
            },
            webhook: {
              type: 'string',
              default: '',
              description: 'URL that gets a JSON POST for each offline/online change (empty: none)',
            },
          },
        },
        report: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: {
              type: 'boolean',
              default: true,
              description: "Write yesterday's data-quality report every day",
            },
            schedule: {
              type: 'string',
              default: '30 0 * * *',
              description: 'When the daily report is written (cron, UTC day before)',
            },
          },
        },
        housekeeping: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: {
              type: 'boolean',
              default: true,
              description: 'Rotate the rejects and event logs and delete old ones',
            },
            schedule: { type: 'string', default: '15 3 * * *', description: 'When housekeeping runs (cron)' },
            retention: duration('90d', 'Rotated logs and reports older than this are deleted'),
          },
        },
      },
    },
    shutdownTimeout: duration(
      '10s',
      'On SIGTERM/SIGINT, how long to keep writing to InfluxDB before exiting (the rest stays in the spool)',
    ),
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
    readonly maxConnectPacketSize: number;
    readonly preAuthBufferBudget: number;
    readonly connectRate: number;
    readonly connectBurst: number;
  };
  readonly auth: {
    readonly maxPendingVerifications: number;
    readonly usernameBackoffAfter: number;
    readonly addressBackoffAfter: number;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
  };
  readonly http: { readonly host: string; readonly port: number };
  readonly influx: {
    readonly api: 'v1' | 'v2';
    readonly url: string;
    readonly db: string;
    readonly username: string;
    readonly password: string;
    readonly org: string;
    readonly bucket: string;
    readonly token: string;
    readonly timeoutMs: number;
  };
  readonly writer: {
    readonly batchSize: number;
    readonly flushIntervalMs: number;
    readonly concurrency: number;
    readonly maxRetryDelayMs: number;
  };
  readonly spool: { readonly enabled: boolean; readonly maxBytes: number; readonly segmentBytes: number };
  readonly shutdownTimeoutMs: number;
  readonly jobs: {
    readonly liveness: { readonly enabled: boolean; readonly schedule: string; readonly webhook: string };
    readonly report: { readonly enabled: boolean; readonly schedule: string };
    readonly housekeeping: {
      readonly enabled: boolean;
      readonly schedule: string;
      readonly retentionMs: number;
    };
  };
  readonly time: { readonly maxFutureMs: number; readonly maxAgeMs: number };
  readonly ingest: { readonly maxBatchReadings: number };
  readonly feedback: { readonly perMinute: number; readonly burst: number };
  readonly rejects: { readonly maxBytesPerDevicePerDay: number };
  readonly registryPollMs: number;
}
