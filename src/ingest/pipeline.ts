// One message in, one Verdict out: route → validate → map → sink, and for anything rejected the
// rejects log on disk and feedback on the device's `rejected` topic. It is the Ingestion every
// message source hands messages to (source.ts): everything awaited here is done before the source
// acknowledges the message, the messages under way are tracked until they settle, and nothing
// accepted is dropped.
import type { Logger } from '../log.js';
import { rejectedTopic } from '../registry/topics.js';
import type { Device } from '../registry/types.js';
import type { SchemaSet } from '../schemas/types.js';
import type { Point } from '../storage/point.js';
import type { RejectEntry, RejectsLog } from '../storage/rejects-log.js';
import type { PointSink } from '../storage/writer.js';
import {
  capRejection,
  type FeedbackBudget,
  MAX_FEEDBACK_ERRORS,
  MAX_FEEDBACK_REJECTIONS,
  toFeedback,
} from './feedback.js';
import { type TimeWindow, toPoint } from './map.js';
import { type IngestRecord, type Rejection, type RejectReason, rejection, type Verdict } from './record.js';
import { parseTopic } from './route.js';
import type { Ingestion, OversizeReport } from './source.js';
import { validatePayload } from './validate.js';

/** A device's own status topic ends so (`lab/{site}/{type}/{id}/status`). */
const STATUS_SUFFIX = '/status';

export interface PipelineStats {
  messages: number;
  readingsAccepted: number;
  rejected: Record<RejectReason, number>;
}

export interface Pipeline extends Ingestion {
  accept(record: IngestRecord): Promise<Verdict>;
  /** Resolves when every message handed in so far has settled (spooled, rejected or failed). */
  settle(): Promise<void>;
  /** Rejections in the last hour (per-minute buckets). */
  rejectedLastHour(): number;
  readonly stats: Readonly<PipelineStats>;
}

export interface PipelineDeps {
  schemas: SchemaSet;
  sink: PointSink;
  rejects: RejectsLog;
  /** Publishes feedback to the device (QoS 0); failures are logged, never fatal. */
  sendFeedback: (topic: string, payload: string) => Promise<void>;
  /** Per-device feedback budget; without one every rejected message is answered. */
  feedbackBudget?: Pick<FeedbackBudget, 'take'>;
  window: TimeWindow;
  maxBatchReadings: number;
  /**
   * Told of each message a device sends, before it is read (side notifications only); not of its
   * `status` messages: a birth message or a last will says the connection changed, not that the
   * device reports (jobs/liveness.ts).
   */
  onReceived?: (deviceId: string) => void;
  /** Told of the battery level (an integer field `battery`) in a device's last accepted reading. */
  onBattery?: (deviceId: string, level: number) => void;
  log: Logger;
}

/**
 * The rejects-log entry of one message: the payload whole, the rejections capped like the feedback
 * (each reading of a 1,000-reading batch with its own error list made the line 13 times the
 * payload), and per-reason counts of all of them for the daily quality report.
 */
function toRejectEntry(record: IngestRecord, rejections: readonly Rejection[]): RejectEntry {
  const listed = rejections
    .slice(0, MAX_FEEDBACK_REJECTIONS)
    .map((r) => ({ ...capRejection(r, MAX_FEEDBACK_ERRORS), ...(r.schema ? { schema: r.schema } : {}) }));
  const reasons: Partial<Record<RejectReason, number>> = {};
  for (const r of rejections) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
  return {
    receivedAt: record.receivedAt.toISOString(),
    clientId: record.clientId,
    topic: record.topic,
    rejections: listed,
    ...(rejections.length > 1 ? { rejectionCount: rejections.length, reasons } : {}),
    payload: record.payload,
  };
}

/** Rejections per minute over the last hour, for `livinglab status`. */
function createRecentCounter() {
  const minutes = new Map<number, number>();
  return {
    add(n: number) {
      const m = Math.floor(Date.now() / 60_000);
      minutes.set(m, (minutes.get(m) ?? 0) + n);
      for (const k of minutes.keys()) if (k <= m - 60) minutes.delete(k);
    },
    lastHour() {
      const m = Math.floor(Date.now() / 60_000);
      let n = 0;
      for (const [k, v] of minutes) if (k > m - 60) n += v;
      return n;
    },
  };
}

type Reject = (record: IngestRecord, rejections: readonly Rejection[]) => Promise<void>;

/** Counts, logs and answers a rejected message: rejects log first, then feedback within budget. */
function createReject(deps: PipelineDeps, stats: PipelineStats, recent: { add(n: number): void }): Reject {
  const { rejects, log } = deps;
  return async (record, rejections) => {
    for (const r of rejections) stats.rejected[r.reason]++;
    recent.add(rejections.length);
    await rejects.append(toRejectEntry(record, rejections));
    if (record.identity.kind === 'unattributed')
      log.info(
        { deviceId: record.identity.id, reason: record.identity.reason },
        'message for no device rejected',
      );
    if (record.identity.kind !== 'device') return;
    const topic = rejectedTopic(record.identity.device);
    log.info(
      { deviceId: record.identity.id, reasons: rejections.map((r) => r.reason), count: rejections.length },
      'message rejected',
    );
    // One feedback message per incoming message, within the device's budget
    // (docs/architecture.md, Pitfalls).
    if (deps.feedbackBudget && !deps.feedbackBudget.take(record.identity.id)) return;
    deps
      .sendFeedback(topic, JSON.stringify(toFeedback(record.topic, record.receivedAt, rejections)))
      .catch((err: Error) => log.warn({ deviceId: record.identity.id, err }, 'feedback not sent'));
  };
}

const NOTHING: Verdict = { accepted: 0, rejections: [], ingested: false };

async function acceptRecord(
  deps: PipelineDeps,
  stats: PipelineStats,
  reject: Reject,
  record: IngestRecord,
): Promise<Verdict> {
  stats.messages++;
  if (record.identity.kind === 'unattributed') {
    const refused = rejection('topic', record.identity.reason);
    await reject(record, [refused]);
    return { accepted: 0, rejections: [refused], ingested: false };
  }
  if (record.identity.kind !== 'device') {
    await reject(record, [rejection('topic', 'only devices publish')]);
    return NOTHING;
  }
  const route = parseTopic(record.topic, record.identity.device, deps.schemas);
  if ('reason' in route) {
    await reject(record, [route]);
    return { accepted: 0, rejections: [route], ingested: false };
  }
  if (route.channel === 'status') {
    const text = record.payload.toString('utf8');
    if (text === 'online' || text === 'offline') return NOTHING;
    const bad = rejection('schema', 'status payload must be "online" or "offline"', { path: '' });
    await reject(record, [bad]);
    return { accepted: 0, rejections: [bad], ingested: false };
  }
  const { readings, rejections } = validatePayload(record.payload, route.schema, {
    maxBatchReadings: deps.maxBatchReadings,
  });
  const points: Point[] = [];
  for (const r of readings) {
    const mapped = toPoint(r.value, r.index, route.schema, route.device, record.receivedAt, deps.window);
    if ('reason' in mapped) rejections.push(mapped);
    else points.push(mapped);
  }
  if (points.length > 0) {
    await deps.sink.append(points);
    const battery = points[points.length - 1]?.fields.battery;
    if (battery?.kind === 'integer') deps.onBattery?.(route.device.id, battery.value);
  }
  stats.readingsAccepted += points.length;
  if (rejections.length > 0) {
    rejections.sort((a, b) => (a.readingIndex ?? -1) - (b.readingIndex ?? -1));
    await reject(record, rejections);
  }
  return { accepted: points.length, rejections, ingested: true };
}

/** The rejects-log entry of a packet a source dropped unread: no topic, no payload, only its size. */
function oversizeEntry({ clientId, declared, limit }: OversizeReport): RejectEntry {
  return {
    receivedAt: new Date().toISOString(),
    clientId: clientId ?? '',
    topic: '',
    rejections: [
      rejection(
        'too-large',
        `packet of ${declared} bytes exceeds the ${limit}-byte maximum; connection closed`,
      ),
    ],
    payload: Buffer.alloc(0),
  };
}

export function createPipeline(deps: PipelineDeps): Pipeline {
  const stats: PipelineStats = {
    messages: 0,
    readingsAccepted: 0,
    rejected: { json: 0, schema: 0, topic: 0, time: 0, 'too-large': 0 },
  };
  const recent = createRecentCounter();
  const reject = createReject(deps, stats, recent);
  const accept = (record: IngestRecord) => acceptRecord(deps, stats, reject, record);
  // Messages between their hand-off and their spool append: shutdown waits for them.
  const inFlight = new Set<Promise<unknown>>();

  return {
    stats,
    rejectedLastHour: () => recent.lastHour(),
    accept,
    async handle(message) {
      if (message.identity.kind === 'device' && !message.topic.endsWith(STATUS_SUFFIX))
        deps.onReceived?.(message.identity.id);
      const accepting = accept(message);
      inFlight.add(accepting);
      try {
        return await accepting;
      } finally {
        inFlight.delete(accepting);
      }
    },
    rejectOversize(report) {
      deps.rejects
        .append(oversizeEntry(report))
        .catch((err: Error) => deps.log.error({ err }, 'rejects log append failed'));
    },
    async settle() {
      await Promise.allSettled([...inFlight]);
    },
  };
}

/** Warns of each device whose type and version no schema serves: all its messages will be rejected. */
export function warnDevicesWithoutSchema(devices: Iterable<Device>, schemas: SchemaSet, log: Logger): void {
  for (const d of devices) {
    if (!schemas.get(d.type, d.schemaVersion)) {
      log.warn(
        { deviceId: d.id, schema: `${d.type}@${d.schemaVersion}` },
        'device has no loaded schema; its messages will be rejected',
      );
    }
  }
}
