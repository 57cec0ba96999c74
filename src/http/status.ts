// What the gateway says about itself: the fleet at a glance (GET /api/v1/status, the one
// GatewayStatus type `livinglab status` reads), health and readiness (/healthz, /readyz) and the
// periodic stats log line. It reads the parts' counters at the moment it is asked and never
// changes them; it holds no state but the start time.
import type { Logger } from '../log.js';
import { provenanceOf } from '../registry/provenance.js';
import type { Registry } from '../registry/registry.js';
import type { Device } from '../registry/types.js';
import type { Drain } from '../storage/drain.js';
import type { RecordQueue } from '../storage/queue.js';
import type { Writer } from '../storage/writer.js';

/** The body of GET /api/v1/status. */
export interface GatewayStatus {
  devices: {
    id: string;
    type: string;
    site: string;
    /** Real or simulated (absent in the registry: real). */
    provenance: 'real' | 'simulated';
    enabled: boolean;
    /** null when the gateway cannot know (an external broker holds the connections). */
    connected: boolean | null;
    silent: boolean;
    lastSeen: string | null;
  }[];
  /** null when the gateway cannot know (an external broker holds the connections). */
  connectedDevices: number | null;
  silentDevices: number;
  /** The record queue (the spool, or the memory queue under `--no-spool`); names kept for scripts. */
  spool: {
    bytes: number;
    limitBytes: number;
    full: boolean;
    /** Unconfirmed records ("unwritten" is this interface's older word for it, see storage/queue.ts). */
    unwrittenRecords: number;
    oldestUnwrittenSeconds: number;
  };
  lastWriteAt: string | null;
  pointsWritten: number;
  rejectsLastHour: number;
}

/** What the reports read; each part by the narrowest view that answers. */
export interface StatusDeps {
  registry: Pick<Registry, 'current'>;
  queue: Pick<RecordQueue, 'stats'>;
  drain: Pick<Drain, 'stats'>;
  writer: Pick<Writer, 'ping'>;
  influxUrl: string;
  /** Connection counts are null where the source cannot know them (an external broker). */
  source: {
    readonly connectedClients: number | null;
    connectedDevices(): readonly Device[] | null;
    /** Why the source takes no messages now (external broker away), or undefined. */
    notReady?(): string | undefined;
  };
  liveness: { readonly silent: ReadonlySet<string>; lastSeen(deviceId: string): number | undefined };
  pipeline: {
    readonly stats: { readonly messages: number; readonly readingsAccepted: number };
    rejectedLastHour(): number;
  };
  /** True between the end of start() and the beginning of stop(). */
  isStarted: () => boolean;
}

export interface StatusReports {
  status(): GatewayStatus;
  /** Cheap facts, no I/O. */
  health(): { uptimeSeconds: number; connectedClients: number | null };
  /** Reasons the gateway is not ready to take readings; empty when it is. */
  readiness(): Promise<string[]>;
  /** One info line with the spool, the drain and ingestion counters. */
  logStats(log: Logger): void;
}

const secondsSince = (at: number | undefined) => (at ? Math.round((Date.now() - at) / 1000) : 0);
const isoOrNull = (at: number | undefined) => (at ? new Date(at).toISOString() : null);

function statusOf(deps: StatusDeps): GatewayStatus {
  const { liveness, drain } = deps;
  const devices = deps.source.connectedDevices();
  const connected = devices && new Set(devices.map((d) => d.id));
  const q = deps.queue.stats;
  return {
    devices: [...deps.registry.current().devices.values()].map((d) => ({
      id: d.id,
      type: d.type,
      site: d.site,
      provenance: provenanceOf(d),
      enabled: d.enabled,
      connected: connected ? connected.has(d.id) : null,
      silent: liveness.silent.has(d.id),
      lastSeen: isoOrNull(liveness.lastSeen(d.id)),
    })),
    connectedDevices: connected ? connected.size : null,
    silentDevices: liveness.silent.size,
    spool: {
      bytes: q.bytes,
      limitBytes: q.limitBytes,
      full: q.full,
      unwrittenRecords: q.unconfirmedRecords,
      oldestUnwrittenSeconds: secondsSince(q.oldestUnconfirmedAt),
    },
    lastWriteAt: isoOrNull(drain.stats.lastWriteAt),
    pointsWritten: drain.stats.pointsWritten,
    rejectsLastHour: deps.pipeline.rejectedLastHour(),
  };
}

async function readinessOf(deps: StatusDeps): Promise<string[]> {
  const reasons: string[] = [];
  if (!deps.isStarted()) reasons.push('starting or stopping');
  try {
    deps.registry.current();
  } catch {
    reasons.push('registry not loaded');
  }
  const away = deps.source.notReady?.();
  if (away) reasons.push(away);
  const q = deps.queue.stats;
  if (q.full) reasons.push(`spool full (${q.bytes} of ${q.limitBytes} bytes): not acknowledging`);
  if (q.appendError) reasons.push(q.appendError);
  if (!(await deps.writer.ping())) reasons.push(`InfluxDB at ${deps.influxUrl} is not reachable`);
  return reasons;
}

export function createStatusReports(deps: StatusDeps): StatusReports {
  const startedAt = Date.now();
  return {
    status: () => statusOf(deps),
    health: () => ({
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      connectedClients: deps.source.connectedClients,
    }),
    readiness: () => readinessOf(deps),
    logStats(log) {
      const q = deps.queue.stats;
      const d = deps.drain.stats;
      log.info(
        {
          spoolBytes: q.bytes,
          spoolFull: q.full,
          unwrittenRecords: q.unconfirmedRecords,
          oldestUnwrittenSeconds: secondsSince(q.oldestUnconfirmedAt),
          pointsWritten: d.pointsWritten,
          pointsRejectedByDatabase: d.pointsRejected,
          writeRetries: d.writeRetries,
          messages: deps.pipeline.stats.messages,
          readingsAccepted: deps.pipeline.stats.readingsAccepted,
          connectedClients: deps.source.connectedClients,
        },
        'stats',
      );
    },
  };
}
