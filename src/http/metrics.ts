// Prometheus metrics: read from the parts' own counters when scraped (the parts do not know about
// Prometheus), plus the write-latency histogram and the Node.js process defaults.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSources {
  pipeline: () => { messages: number; readingsAccepted: number; rejected: Record<string, number> };
  drain: () => {
    pointsWritten: number;
    pointsRejected: number;
    writeRetries: number;
    readErrors: number;
    workers: number;
  };
  queue: () => {
    bytes: number;
    diskBytes: number;
    limitBytes: number;
    oldestUnconfirmedAt: number | undefined;
    full: boolean;
    appendError: string | undefined;
    writeErrors: number;
  };
  /** null where the source cannot know (an external broker holds the connections): no series. */
  connectedClients: () => number | null;
  feedbackDropped: () => Record<string, number>;
  deliveriesDropped: () => number;
  rejectsNotLogged: () => number;
  /** Before and at login: see broker/preauth.ts, registry/auth-backoff.ts, registry/hash-pool.ts. */
  guard: () => {
    preAuthBytes: number;
    connectionsRefused: Readonly<Record<string, number>>;
    auth: Readonly<Record<string, number>>;
    hashes: { hashes: number; dummyHashes: number };
    hashQueue: number;
  };
  registryReloads: () => number;
  /** null where the source cannot know: the gauge has no series rather than a false 0. */
  connectedDevices: () => { site: string; type: string }[] | null;
  jobs: () => ReadonlyMap<string, { runs: number; failures: number }>;
  liveness: () => { silent: number; batteryLow: number; offline: number; online: number };
  /** Refused HTTP credentials by reason (http/token-guard.ts). */
  httpAuthFailures: () => Readonly<Record<string, number>>;
  /** The served TLS certificate: its file and end of validity (Unix s); undefined without TLS. */
  tlsCertificate: () => { file: string; expiresAt: number } | undefined;
  /** Acknowledgements to an external broker (`--source external`); absent otherwise: no series. */
  brokerAcks?: () => { acknowledged: number; withheld: number; redeliveries: number };
}

export interface Metrics {
  readonly registry: Registry;
  observeWriteLatency(seconds: number): void;
}

function counter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function gauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** Disk faults on the durable path: each one is survived, and each one is counted. */
function addSpoolFaultMetrics(registry: Registry, src: MetricsSources): void {
  counter(
    registry,
    'livinglab_spool_read_errors_total',
    'Failed reads of the spool by the drain (retried with backoff; nothing is lost)',
    () => src.drain().readErrors,
  );
  gauge(registry, 'livinglab_drain_workers', 'Drain workers running', () => src.drain().workers);
  counter(
    registry,
    'livinglab_spool_write_errors_total',
    'Spool writes that failed on a disk error (their readings were not acknowledged)',
    () => src.queue().writeErrors,
  );
  gauge(
    registry,
    'livinglab_spool_failed',
    '1 while the spool refuses readings because a failed write could not be cut back out of it',
    () => (src.queue().appendError ? 1 : 0),
  );
}

function labelled(
  registry: Registry,
  name: string,
  help: string,
  label: string,
  read: () => Readonly<Record<string, number>>,
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, n] of Object.entries(read())) this.inc({ [label]: value }, n);
    },
  });
}

/** What a flooding or non-reading client cost: messages dropped or not stored, by cause. */
function addDropCounters(registry: Registry, src: MetricsSources): void {
  labelled(
    registry,
    'livinglab_feedback_dropped_total',
    'Feedback messages not sent: over the device budget (rate) or its connection backed up (backlog)',
    'reason',
    () => src.feedbackDropped(),
  );
  counter(
    registry,
    'livinglab_deliveries_dropped_total',
    'MQTT deliveries dropped because the receiving connection was backed up (not reading its socket)',
    () => src.deliveriesDropped(),
  );
  counter(
    registry,
    'livinglab_rejects_not_logged_total',
    "Rejected messages counted but not written to the rejects log: the device's daily budget was spent",
    () => src.rejectsNotLogged(),
  );
}

function registerGuardMetrics(registry: Registry, src: MetricsSources): void {
  const { guard } = src;
  gauge(
    registry,
    'livinglab_preauth_buffered_bytes',
    'Bytes held by MQTT connections that have not logged in yet',
    () => guard().preAuthBytes,
  );
  labelled(
    registry,
    'livinglab_connections_refused_total',
    'MQTT connections refused or closed before login, by reason',
    'reason',
    () => guard().connectionsRefused,
  );
  labelled(
    registry,
    'livinglab_auth_failures_total',
    'MQTT logins refused, by reason',
    'reason',
    () => guard().auth,
  );
  labelled(
    registry,
    'livinglab_http_auth_failures_total',
    'HTTP requests refused for their token, by reason (missing, malformed, unknown, wrong-secret, revoked, expired, forbidden; refused: 429 after too many bad tokens)',
    'reason',
    () => src.httpAuthFailures(),
  );
  labelled(
    registry,
    'livinglab_password_hashes_total',
    'Password hashes computed for MQTT logins: real checks, and dummy ones for unknown usernames',
    'kind',
    () => {
      const h = guard().hashes;
      return { real: h.hashes, dummy: h.dummyHashes };
    },
  );
  gauge(
    registry,
    'livinglab_password_checks_queued',
    'Password checks waiting for or running on the hashing thread',
    () => guard().hashQueue,
  );
}

/** What came in from devices: messages, and readings accepted or rejected by reason. */
function registerPipelineMetrics(registry: Registry, pipeline: MetricsSources['pipeline']): void {
  counter(
    registry,
    'livinglab_messages_received_total',
    'MQTT messages received from devices',
    () => pipeline().messages,
  );
  counter(
    registry,
    'livinglab_readings_accepted_total',
    'Readings that passed validation and were spooled',
    () => pipeline().readingsAccepted,
  );
  labelled(
    registry,
    'livinglab_readings_rejected_total',
    'Readings (or whole messages) rejected, by reason',
    'reason',
    () => pipeline().rejected,
  );
}

/** What went out to InfluxDB: points written, refused as bad data, and writes retried. */
function registerDrainMetrics(registry: Registry, drain: MetricsSources['drain']): void {
  counter(
    registry,
    'livinglab_points_written_total',
    'Points InfluxDB accepted',
    () => drain().pointsWritten,
  );
  counter(
    registry,
    'livinglab_points_rejected_by_database_total',
    'Points InfluxDB refused as bad data (moved to the rejects log)',
    () => drain().pointsRejected,
  );
  counter(registry, 'livinglab_write_retries_total', 'InfluxDB writes retried', () => drain().writeRetries);
}

/** How much is waiting on disk for InfluxDB, and how old the oldest of it is. */
function registerSpoolSizeMetrics(registry: Registry, queue: MetricsSources['queue']): void {
  gauge(
    registry,
    'livinglab_spool_bytes',
    'Bytes of accepted readings not yet in InfluxDB',
    () => queue().bytes,
  );
  gauge(
    registry,
    'livinglab_spool_disk_bytes',
    'Bytes of spool segment files on disk',
    () => queue().diskBytes,
  );
  gauge(registry, 'livinglab_spool_limit_bytes', 'Spool size limit', () => queue().limitBytes);
  gauge(
    registry,
    'livinglab_spool_full',
    '1 while acknowledgements are paused because the spool is full',
    () => (queue().full ? 1 : 0),
  );
  gauge(
    registry,
    'livinglab_spool_oldest_unwritten_seconds',
    'Age of the oldest reading not yet in InfluxDB',
    () => {
      const at = queue().oldestUnconfirmedAt;
      return at ? Math.max(0, (Date.now() - at) / 1000) : 0;
    },
  );
}

/** The fleet: live connections by type and site, and scheduled job runs. */
function registerFleetMetrics(registry: Registry, src: MetricsSources): void {
  new Gauge({
    name: 'livinglab_connected_devices',
    help: 'Devices with a live MQTT connection, by type and site',
    labelNames: ['device_type', 'site'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of src.connectedDevices() ?? []) this.inc({ device_type: d.type, site: d.site });
    },
  });
  for (const [name, pick, help] of [
    ['livinglab_job_runs_total', 'runs', 'Scheduled job runs'],
    ['livinglab_job_failures_total', 'failures', 'Scheduled job runs that failed'],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ['job'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [job, s] of src.jobs()) this.inc({ job }, s[pick]);
      },
    });
  }
}

/** Devices gone quiet or low on battery, as the liveness job last saw them. */
function registerLivenessMetrics(registry: Registry, liveness: MetricsSources['liveness']): void {
  gauge(
    registry,
    'livinglab_devices_battery_low',
    'Devices whose last reported battery level is low',
    () => liveness().batteryLow,
  );
  gauge(
    registry,
    'livinglab_devices_silent',
    'Devices marked offline for being silent over 3 of their intervals',
    () => liveness().silent,
  );
  labelled(
    registry,
    'livinglab_liveness_transitions_total',
    'Devices marked offline (silent) or online again',
    'state',
    () => {
      const l = liveness();
      return { offline: l.offline, online: l.online };
    },
  );
}

/** No series at all without TLS: a 0 would read as "expired in 1970" and fire the expiry alert. */
function registerTlsMetrics(registry: Registry, tls: MetricsSources['tlsCertificate']): void {
  new Gauge({
    name: 'livinglab_tls_certificate_expiry_timestamp_seconds',
    help: 'When the served TLS server certificate expires (Unix time; follows renewals)',
    labelNames: ['file'],
    registers: [registry],
    collect() {
      this.reset();
      const c = tls();
      if (c) this.set({ file: c.file }, c.expiresAt);
    },
  });
}

/** Behind an external broker: what the gateway acknowledged to it, and what it left there. */
function registerBrokerAckMetrics(registry: Registry, acks: NonNullable<MetricsSources['brokerAcks']>): void {
  counter(
    registry,
    'livinglab_broker_acks_total',
    'PUBACKs sent to the external broker, each after its message was in the spool (or rejected as bad input)',
    () => acks().acknowledged,
  );
  counter(
    registry,
    'livinglab_broker_acks_withheld_total',
    'Messages left unacknowledged with the external broker (spool full or failing); the broker keeps and resends them',
    () => acks().withheld,
  );
  counter(
    registry,
    'livinglab_broker_redeliveries_total',
    'Reconnects to the external broker made to have withheld messages sent again',
    () => acks().redeliveries,
  );
}

// Registration order is the order of the scrape output; kept as it was before the split.
export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerPipelineMetrics(registry, src.pipeline);
  registerDrainMetrics(registry, src.drain);
  addSpoolFaultMetrics(registry, src);
  addDropCounters(registry, src);
  counter(registry, 'livinglab_registry_reloads_total', 'Registry file reloads', () => src.registryReloads());
  registerSpoolSizeMetrics(registry, src.queue);
  // Known or not is fixed by the source the gateway runs with; an unlabelled gauge always has a sample.
  if (src.connectedClients() !== null)
    gauge(
      registry,
      'livinglab_connected_clients',
      'Connected MQTT clients',
      () => src.connectedClients() ?? 0,
    );
  registerGuardMetrics(registry, src);
  registerFleetMetrics(registry, src);
  registerLivenessMetrics(registry, src.liveness);
  registerTlsMetrics(registry, src.tlsCertificate);
  if (src.brokerAcks) registerBrokerAckMetrics(registry, src.brokerAcks);
  const latency = new Histogram({
    name: 'livinglab_write_duration_seconds',
    help: 'Duration of successful InfluxDB writes',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { registry, observeWriteLatency: (s) => latency.observe(s) };
}
