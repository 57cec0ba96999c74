// The gateway's parts as Prometheus sources (metrics.ts): which counter of which part backs which
// metric. The parts are seen through the narrowest shape that answers, so nothing here depends on
// the broker, ingestion or jobs modules, and nothing here changes a counter.
import { createMetrics, type Metrics, type MetricsSources } from './metrics.js';

type Read<K extends keyof MetricsSources> = ReturnType<NonNullable<MetricsSources[K]>>;
type Guard = Read<'guard'>;

export interface MetricParts {
  pipeline: { readonly stats: Read<'pipeline'> };
  drain: { readonly stats: Read<'drain'> };
  queue: { readonly stats: Read<'queue'> };
  /** Connection counts are null where the source cannot know them (an external broker): no series then. */
  source: {
    readonly connectedClients: number | null;
    readonly deliveriesDropped: number;
    readonly guardStats: Omit<Guard, 'hashes' | 'hashQueue'>;
    connectedDevices(): Read<'connectedDevices'> | null;
  };
  feedbackBudget: { readonly stats: { readonly dropped: Read<'feedbackDropped'> } };
  rejects: { readonly notLogged: number };
  verifier: { readonly stats: Guard['hashes'] };
  hashPool: { readonly pending: number };
  registry: { readonly reloads: number };
  scheduler: { readonly stats: Read<'jobs'> };
  liveness: {
    readonly silent: ReadonlySet<string>;
    readonly batteryLow: ReadonlySet<string>;
    readonly transitions: { readonly offline: number; readonly online: number };
  };
  httpGuard: { readonly failures: Read<'httpAuthFailures'> };
  /** The TLS material once start() read it; undefined before, and without TLS. */
  tls: () => { expiresAt(): number } | undefined;
  /** The configured certificate file (tls.cert), the metric's label. */
  tlsCertFile: string;
  /** The external broker source, when the gateway runs with one. */
  external?: { readonly stats: Read<'brokerAcks'> } | undefined;
}

export function createGatewayMetrics(p: MetricParts): Metrics {
  const { source, liveness, external } = p;
  return createMetrics({
    ...(external ? { brokerAcks: () => external.stats } : {}),
    pipeline: () => p.pipeline.stats,
    drain: () => p.drain.stats,
    queue: () => p.queue.stats,
    connectedClients: () => source.connectedClients,
    feedbackDropped: () => p.feedbackBudget.stats.dropped,
    deliveriesDropped: () => source.deliveriesDropped,
    rejectsNotLogged: () => p.rejects.notLogged,
    guard: () => ({ ...source.guardStats, hashes: p.verifier.stats, hashQueue: p.hashPool.pending }),
    registryReloads: () => p.registry.reloads,
    connectedDevices: () => source.connectedDevices(),
    jobs: () => p.scheduler.stats,
    liveness: () => ({
      silent: liveness.silent.size,
      batteryLow: liveness.batteryLow.size,
      ...liveness.transitions,
    }),
    httpAuthFailures: () => p.httpGuard.failures,
    tlsCertificate: () => {
      const tls = p.tls();
      return tls ? { file: p.tlsCertFile, expiresAt: tls.expiresAt() } : undefined;
    },
  });
}
