// The one definition of the gateway's configuration. Each option is written once here, with its
// default, its description and (where it has one) its `livinglab serve` flag; from this TypeBox
// tree come the JSON Schema ajv validates, the Config type, the LIVINGLAB_* environment names, the
// command-line flags (cli/options.ts) and livinglab.example.yaml (example.ts). Adding an option is
// one entry here plus its test. This module never reads files or the environment.
// Why TypeBox: its builders return plain JSON Schema (ajv compiles it unchanged, so validation
// messages stay ajv's) and carry the static type, so no generated file can fall out of step; the
// HTTP API uses the same library through @fastify/type-provider-typebox.
import { type Static, type TObject, type TProperties, type TSchema, Type } from 'typebox';
import { durationPattern } from './duration.js';

/**
 * Keywords beside JSON Schema on a leaf option. ajv ignores them (strict: false); the loader, the
 * command line and the example file read them.
 */
export interface OptionMeta {
  /** The `livinglab serve` flag in commander syntax: `--mqtt-port <port>`, or `--no-x` to turn a boolean off. */
  readonly flag?: string;
  /** Written as a duration (Config holds milliseconds, under the key + `Ms`) or a byte size. */
  readonly unit?: 'ms' | 'bytes';
  /** The key in Config when it differs from the key in the file (a size named for what it holds). */
  readonly configKey?: string;
  /** For a duration: the shortest value that makes sense (load.ts refuses less); "1ms" when absent, so 0 is refused. */
  readonly least?: string;
}

type Keywords = OptionMeta & {
  readonly pattern?: string;
  readonly format?: string;
  readonly minimum?: number;
  readonly maximum?: number;
};

// What a leaf without extra keywords adds: nothing.
type NoKeywords = Record<never, never>;

const SIZE_PATTERN = '^\\d+(\\.\\d+)?\\s*([kKmMgG]i?[bB]|[bB])?$';

const text = <const E extends Keywords = NoKeywords>(def: string, description: string, extra?: E) =>
  Object.assign(Type.String({ default: def, description }), extra);

const integer = <const E extends Keywords = NoKeywords>(def: number, description: string, extra?: E) =>
  Object.assign(Type.Integer({ default: def, description }), extra);

const boolean = <const E extends Keywords = NoKeywords>(def: boolean, description: string, extra?: E) =>
  Object.assign(Type.Boolean({ default: def, description }), extra);

const choice = <const V extends string[], const E extends Keywords = NoKeywords>(
  values: readonly [...V],
  def: V[number],
  description: string,
  extra?: E,
) => Object.assign(Type.Enum(values, { default: def, description }), extra);

// A string with a unit or a bare integer: one `type` array (not anyOf) so ajv reports one message.
const withUnit = (pattern: string, def: string, description: string) =>
  Type.Unsafe<string | number>({ type: ['string', 'integer'], pattern, default: def, description });

// Always with its unit: a bare number is refused by load.ts with the unit it most likely lacked.
const duration = <const E extends Keywords = NoKeywords>(def: string, description: string, extra?: E) =>
  Object.assign(
    Type.Unsafe<string>({
      type: 'string',
      pattern: durationPattern({ fraction: true }),
      default: def,
      description,
    }),
    { unit: 'ms' } as const,
    extra,
  );

const size = <const E extends Keywords = NoKeywords>(def: string, description: string, extra?: E) =>
  Object.assign(withUnit(SIZE_PATTERN, def, description), { unit: 'bytes' } as const, extra);

const group = <P extends TProperties>(properties: P) =>
  Type.Object(properties, { additionalProperties: false, default: {} });

export const CONFIG_SCHEMA = Type.Object(
  {
    registry: text('lab.yaml', 'Device registry file (YAML, mode 0600)', { flag: '--registry <file>' }),
    secretsFile: text(
      '',
      'Secrets file of the registry: password and token hashes, project keys, audit key (mode 0600; default: lab.secrets.yaml beside the registry)',
      { flag: '--secrets-file <file>' },
    ),
    schemasDir: text('', 'Device schema folder (default: the bundled device-schemas/)', {
      flag: '--schemas-dir <dir>',
    }),
    dataDir: text('data', 'Folder for the spool and the rejects log', { flag: '--data-dir <dir>' }),
    logLevel: choice(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'info',
      'Log level; payloads are only logged at debug and below',
      { flag: '--log-level <level>' },
    ),
    timezone: text(
      '',
      "The lab's IANA time zone (for example Europe/Copenhagen; UTC is allowed): dates are its days (project periods, consent dates and the default of today, every=1d export windows, the day a daily report covers) and the clock job schedules follow it (empty: the system's)",
      { format: 'time-zone' },
    ),
    logFormat: choice(
      ['auto', 'json', 'pretty'],
      'auto',
      'Log format on stderr: json (one JSON object a line), pretty (readable lines), auto (pretty on a terminal, json otherwise)',
      { flag: '--log-format <format>' },
    ),
    mqtt: group({
      host: text(
        '',
        'Address the plain MQTT listener binds to (empty: 0.0.0.0, or 127.0.0.1 only once TLS is configured)',
        { flag: '--mqtt-host <address>' },
      ),
      port: integer(1883, 'MQTT TCP port (0: any free port)', {
        minimum: 0,
        maximum: 65535,
        flag: '--mqtt-port <port>',
      }),
      maxPacketSize: integer(
        262144,
        'Largest MQTT packet accepted, in bytes; a larger one closes the connection',
        {
          minimum: 1024,
          flag: '--max-packet-size <bytes>',
        },
      ),
      maxConnections: integer(
        20000,
        'Most simultaneous MQTT connections, all listeners (TCP, TLS, WebSocket) together',
        {
          minimum: 1,
        },
      ),
      connectTimeout: duration('10s', 'Time a new connection has to send CONNECT'),
      keepaliveLimit: integer(1200, 'Largest keepalive (seconds) a client may ask for', { minimum: 0 }),
      maxConnectPacketSize: integer(
        8192,
        'Largest CONNECT packet accepted (will message included), in bytes; checked before any credential',
        { minimum: 256 },
      ),
      preAuthBufferBudget: size(
        '16MiB',
        'Bytes all not-yet-authenticated connections together may have sent; over it the largest are closed',
      ),
      connectRate: integer(100, 'New connections per second allowed from one remote address (sustained)', {
        minimum: 1,
      }),
      connectBurst: integer(
        1000,
        'New connections one remote address may open at once before connectRate applies',
        {
          minimum: 1,
        },
      ),
    }),
    tls: group({
      cert: text(
        '',
        'Server certificate chain (PEM) for MQTT over TLS, WSS and HTTPS; TLS is on when cert and key are set',
        {
          flag: '--tls-cert <file>',
        },
      ),
      key: text('', 'Private key (PEM) of the server certificate', { flag: '--tls-key <file>' }),
      ca: text(
        '',
        'CA bundle (PEM): client certificates issued by it may authenticate devices (empty: no client certificates)',
        {
          flag: '--tls-ca <file>',
        },
      ),
      minVersion: choice(['TLSv1.2', 'TLSv1.3'], 'TLSv1.2', 'Oldest TLS version accepted'),
    }),
    listeners: group({
      mqtts: group({
        host: text('0.0.0.0', 'Address the MQTT over TLS listener binds to (on whenever TLS is configured)'),
        port: integer(8883, 'MQTT over TLS port (0: any free port)', {
          minimum: 0,
          maximum: 65535,
          flag: '--mqtts-port <port>',
        }),
      }),
      ws: group({
        enabled: boolean(
          false,
          'MQTT over WebSocket (path /mqtt) without TLS: passwords cross the network in clear',
        ),
        host: text('0.0.0.0', 'Address the MQTT-over-WebSocket listener binds to'),
        port: integer(8083, 'MQTT-over-WebSocket port, path /mqtt (0: any free port)', {
          minimum: 0,
          maximum: 65535,
          flag: '--ws-port <port>',
        }),
      }),
      wss: group({
        enabled: boolean(false, 'MQTT over secure WebSocket (path /mqtt); needs tls.cert and tls.key'),
        host: text('0.0.0.0', 'Address the MQTT-over-secure-WebSocket listener binds to'),
        port: integer(8084, 'MQTT-over-secure-WebSocket port, path /mqtt (0: any free port)', {
          minimum: 0,
          maximum: 65535,
          flag: '--wss-port <port>',
        }),
      }),
      ops: group({
        host: text(
          '127.0.0.1',
          'Address of the ops listener (/healthz, /readyz, /metrics); anywhere but loopback it needs the ops token',
        ),
        port: integer(9464, 'Ops listener port (0: any free port)', {
          minimum: 0,
          maximum: 65535,
          flag: '--ops-port <port>',
        }),
        tokenFile: text(
          '',
          'File holding the bearer token /readyz and /metrics require (or set LIVINGLAB_OPS_TOKEN); never the token itself',
        ),
      }),
      brokerHooks: group({
        enabled: boolean(
          false,
          'HTTP auth hooks for an external broker (EMQX, VerneMQ, mosquitto-go-auth) answering from the registry; needs the hooks token',
        ),
        host: text('127.0.0.1', 'Address of the broker auth hooks listener (the broker calls it)'),
        port: integer(9465, 'Broker auth hooks listener port (0: any free port)', {
          minimum: 0,
          maximum: 65535,
          flag: '--broker-hooks-port <port>',
        }),
        tokenFile: text(
          '',
          'File holding the secret the broker sends to the hooks (or set LIVINGLAB_BROKER_HOOKS_TOKEN); never the secret itself',
        ),
      }),
    }),
    mosquitto: group({
      syncDir: text(
        '',
        'Folder where serve keeps a Mosquitto password_file and acl_file in step with the registry (empty: off)',
        { flag: '--mosquitto-sync <dir>' },
      ),
      pidFile: text(
        '',
        "Mosquitto's pid file: serve sends that process SIGHUP after rewriting the files, so it reloads them",
        { flag: '--mosquitto-pid-file <file>' },
      ),
    }),
    auth: group({
      maxPendingVerifications: integer(
        1000,
        'Password checks queued for the hashing thread; more are refused (CONNACK 3, HTTP 503)',
        { minimum: 1 },
      ),
      usernameBackoffAfter: integer(
        5,
        'Failed logins of one username before its attempts are refused unchecked for a growing delay',
        { minimum: 1 },
      ),
      addressBackoffAfter: integer(
        20,
        'Failed logins from one address before its refusals are delayed by a growing delay',
        { minimum: 1 },
      ),
      backoffBase: duration('1s', 'First backoff delay; it doubles with each further failure'),
      backoffMax: duration('30s', 'Longest backoff delay'),
      tokenDelayAfter: integer(
        5,
        'Bad HTTP tokens from one address before its 401 answers are held for a growing delay',
        { minimum: 1 },
      ),
      tokenRefuseAfter: integer(
        10,
        'Bad HTTP tokens from one address before it is refused unchecked (429, Retry-After) for a growing delay',
        { minimum: 1 },
      ),
    }),
    http: group({
      host: text('0.0.0.0', 'Address the HTTP server binds to', { flag: '--http-host <address>' }),
      port: integer(8080, 'HTTP port (0: any free port)', {
        minimum: 0,
        maximum: 65535,
        flag: '--http-port <port>',
      }),
      tls: choice(
        ['auto', 'off'],
        'auto',
        'HTTPS for the API: auto = HTTPS whenever tls.cert and tls.key are set; off = plain HTTP even then (only behind a TLS-terminating proxy on this host)',
        { flag: '--http-tls <auto|off>' },
      ),
    }),
    influx: group({
      api: choice(
        ['v1', 'v2'],
        'v1',
        'Write API: v1 (/write; InfluxDB 1.x, 3.x, 2.x compatibility) or v2 (/api/v2/write)',
        { flag: '--influx-api <v1|v2>' },
      ),
      url: text('http://127.0.0.1:8086', 'InfluxDB base URL', {
        pattern: '^https?://',
        flag: '--influx-url <url>',
      }),
      db: text('livinglab', 'InfluxDB database (created if missing)', {
        pattern: '^[A-Za-z0-9_-]+$',
        flag: '--influx-db <name>',
      }),
      username: text('', 'InfluxDB user (empty: no authentication)'),
      password: text('', 'InfluxDB password (v1)'),
      readUsername: text(
        '',
        'InfluxDB user for reads (exports, quality report, simulate --verify), ideally one with READ only (v1; empty: influx.username)',
      ),
      readPassword: text('', 'Password of influx.readUsername (v1; used only when it is set)'),
      org: text('', 'InfluxDB organisation (v2)', { flag: '--influx-org <org>' }),
      bucket: text('', 'InfluxDB bucket (v2)', { flag: '--influx-bucket <bucket>' }),
      token: text('', 'InfluxDB API token (v2); prefer LIVINGLAB_INFLUX_TOKEN to a flag', {
        flag: '--influx-token <token>',
      }),
      readToken: text(
        '',
        "InfluxDB API token for reads through the v1-compatible /query of the bucket's DBRP mapping (v2; empty: influx.token)",
      ),
      timeout: duration('30s', 'Longest time one write may take before it is retried'),
    }),
    writer: group({
      batchSize: integer(5000, 'Points per InfluxDB write', {
        minimum: 1,
        maximum: 100000,
        flag: '--batch-size <points>',
      }),
      flushInterval: duration('1s', 'Longest time a point waits before it is written', {
        flag: '--flush-interval <duration>',
      }),
      concurrency: integer(2, 'Writes in flight at once', {
        minimum: 1,
        maximum: 16,
        flag: '--write-concurrency <n>',
      }),
      maxRetryDelay: duration('30s', 'Longest wait between two retries of a failed write'),
    }),
    time: group({
      maxFuture: duration('5m', 'Readings stamped further ahead of the receive time are rejected ("time")', {
        flag: '--max-future <duration>',
        least: '0s',
      }),
      maxAge: duration('7d', 'Readings older than this are rejected ("time")', {
        flag: '--max-age <duration>',
      }),
    }),
    ingest: group({
      maxBatchReadings: integer(
        1000,
        'Most readings in one {"readings": [...]} message; more is rejected as "too-large"',
        { minimum: 1, maximum: 100000 },
      ),
    }),
    source: choice(
      ['embedded', 'external'],
      'embedded',
      'Where device messages come from: embedded (this gateway is the MQTT broker) or external (an MQTT broker or cluster the gateway subscribes to; see external.*)',
      { flag: '--source <embedded|external>' },
    ),
    external: group({
      url: text(
        '',
        'External broker URL for --source external: mqtt://HOST:1883 or mqtts://HOST:8883 (required in that mode)',
        { flag: '--broker-url <url>' },
      ),
      username: text('', "The gateway's own username on the external broker (empty: none)"),
      passwordFile: text(
        '',
        "File holding the gateway's password on the external broker (or set LIVINGLAB_BROKER_PASSWORD); never the password itself",
      ),
      clientId: text(
        'livinglab-gateway',
        "The gateway's fixed client id: its persistent session (and what the broker keeps for it while it is away) is bound to it; unique per gateway",
        { pattern: '^[A-Za-z0-9_:.-]{1,64}$', flag: '--broker-client-id <id>' },
      ),
      group: text(
        'livinglab',
        'Shared-subscription group: gateways in one group split the messages ($share/GROUP/lab/+/+/+/+)',
        {
          pattern: '^[A-Za-z0-9_-]{1,64}$',
          flag: '--broker-group <name>',
        },
      ),
      ca: text(
        '',
        "CA bundle (PEM) that signed the external broker's certificate, for mqtts:// (empty: the system's CAs)",
      ),
      connections: integer(
        4,
        'MQTT sessions this gateway opens, each a member of the group (client ids CLIENTID, CLIENTID-2, ...); each takes one message at a time, so more commit more at once. Lowering it leaves messages in the dropped sessions until they expire',
        { minimum: 1, maximum: 64 },
      ),
      receiveMaximum: integer(
        100,
        'Messages the broker may have in flight to each session before it waits for acknowledgements (MQTT 5 Receive Maximum): the bound of back-pressure',
        { minimum: 1, maximum: 65535 },
      ),
      sessionExpiry: duration(
        '1d',
        "How long the broker keeps the gateway's session and its messages while the gateway is away (MQTT 5 Session Expiry Interval)",
        { least: '1s' },
      ),
      ackWait: duration(
        '10s',
        'Longest time one message may wait for the spool before it is left unacknowledged (the broker keeps it and sends it again on a reconnect)',
        { least: '100ms' },
      ),
    }),
    feedback: group({
      perMinute: integer(
        120,
        'Feedback messages per minute each device may receive on its rejected topic; the rest are dropped and counted',
        { minimum: 1 },
      ),
      burst: integer(20, 'Feedback messages a device may receive in a burst before the rate applies', {
        minimum: 1,
      }),
    }),
    rejects: group({
      maxPerDevicePerDay: size(
        '8MiB',
        'Bytes of rejects log one device may fill per day (UTC); later rejections are counted, not stored',
        { configKey: 'maxBytesPerDevicePerDay' },
      ),
    }),
    spool: group({
      enabled: boolean(
        true,
        'Keep accepted readings in a write-ahead log on disk until InfluxDB has them (off only to measure its cost: loses data on a crash)',
        { flag: '--no-spool' },
      ),
      maxSize: size(
        '1GiB',
        'Spool size limit; when full the gateway stops acknowledging instead of dropping',
        {
          configKey: 'maxBytes',
          flag: '--spool-max <size>',
        },
      ),
      segmentSize: size('16MiB', 'Size at which the spool starts a new segment file', {
        configKey: 'segmentBytes',
      }),
    }),
    jobs: group({
      leader: boolean(
        true,
        "This gateway runs the lab's once-per-lab jobs: liveness (offline/online and battery events, devices' retained status) and the daily report. With several gateways set it true on exactly one (README, Scaling past one machine)",
        { flag: '--no-jobs-leader' },
      ),
      liveness: group({
        enabled: boolean(true, 'Mark devices silent for 3 of their intervals offline'),
        schedule: text('* * * * *', 'When the liveness check runs (cron; seconds allowed)'),
        webhook: text('', 'URL that gets a JSON POST for each offline/online change (empty: none)'),
      }),
      report: group({
        enabled: boolean(true, "Write yesterday's data-quality report every day"),
        schedule: text(
          '30 0 * * *',
          "When the daily report of the day before is written (cron, lab's time zone)",
        ),
      }),
      housekeeping: group({
        enabled: boolean(true, 'Rotate the rejects and event logs and delete old ones'),
        schedule: text('15 3 * * *', 'When housekeeping runs (cron)'),
        retention: duration('90d', 'Rotated logs and reports older than this are deleted (at least 1d)', {
          least: '1d',
        }),
      }),
    }),
    shutdownTimeout: duration(
      '10s',
      'On SIGTERM/SIGINT, how long to keep writing to InfluxDB before exiting (the rest stays in the spool)',
      { flag: '--shutdown-timeout <duration>', least: '0s' },
    ),
    registryPoll: duration('1s', 'How often the registry file is checked for changes (at least 10ms)', {
      least: '10ms',
    }),
  },
  { additionalProperties: false },
);

type ConfigKey<K, S> = S extends { readonly unit: 'ms' }
  ? `${K & string}Ms`
  : S extends { readonly configKey: infer N extends string }
    ? N
    : K;
type ConfigValue<S> =
  S extends TObject<infer P>
    ? ConfigOf<P>
    : S extends { readonly unit: 'ms' | 'bytes' }
      ? number
      : S extends TSchema
        ? Static<S>
        : never;
type ConfigOf<P extends TProperties> = { readonly [K in keyof P as ConfigKey<K, P[K]>]: ConfigValue<P[K]> };

/**
 * The validated, normalised configuration: durations are milliseconds (key + `Ms`), sizes bytes.
 * Deep-frozen by load.ts. `configKeyOf` is the same renaming rule for the loader.
 */
export type Config = ConfigOf<(typeof CONFIG_SCHEMA)['properties']>;

/** The key a leaf option has in Config (see the Config type, which states the same rule). */
export function configKeyOf(key: string, leaf: OptionMeta): string {
  return leaf.unit === 'ms' ? `${key}Ms` : (leaf.configKey ?? key);
}

/** A node of CONFIG_SCHEMA as the walkers below read it. */
export interface OptionNode extends OptionMeta {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, OptionNode>>;
  readonly enum?: readonly string[];
  readonly description?: string;
  readonly default?: unknown;
}

/** One leaf option: where it sits, its LIVINGLAB_* name and how its text is read. */
export interface LeafOption {
  path: string[];
  env: string;
  type: 'string' | 'integer' | 'boolean' | 'duration' | 'size' | 'enum';
  node: OptionNode;
}

const envName = (path: string[]) =>
  `LIVINGLAB_${path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;

function typeOf(node: OptionNode): LeafOption['type'] {
  if (node.unit === 'ms') return 'duration';
  if (node.unit === 'bytes') return 'size';
  if (node.enum) return 'enum';
  return node.type === 'integer' || node.type === 'boolean' ? node.type : 'string';
}

/** Every leaf option in schema order, with its LIVINGLAB_* environment name. */
export function listOptions(): LeafOption[] {
  const out: LeafOption[] = [];
  const walk = (node: OptionNode, path: string[]) => {
    if (!node.properties) {
      out.push({ path, env: envName(path), type: typeOf(node), node });
      return;
    }
    for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key]);
  };
  walk(CONFIG_ROOT, []);
  return out;
}

/** The schema as plain nodes, for walkers that read descriptions, defaults and flags. */
export const CONFIG_ROOT: OptionNode = CONFIG_SCHEMA;
