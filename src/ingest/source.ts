// The contract between ingestion and whatever brings device messages to it: the embedded broker
// (broker/broker.ts) or an external MQTT broker (sources/external.ts). A source hands each message
// in with the identity it proved (the embedded broker's login) or the registered device its topic
// names (an external broker, whose ACL checked the publisher). It never validates, stores or drops a message
// itself, and never acknowledges one before ingestion has answered for it.
import type { IngestRecord, Verdict } from './record.js';

/** One message a source hands in: topic, payload, received time and the identity it proved. */
export type SourceMessage = IngestRecord;

/** A packet dropped unread because it was larger than the source allows. */
export interface OversizeReport {
  readonly clientId: string | undefined;
  readonly declared: number;
  readonly limit: number;
}

/** What ingestion offers every source; the pipeline implements it. */
export interface Ingestion {
  /**
   * Takes one message. The promise is the acknowledge callback: it resolves once the message's
   * readings are committed to the spool (or the message was rejected, logged and answered with
   * feedback), and only then may the source acknowledge it; a message with rejections is
   * acknowledged but not passed on to subscribers. It rejects when the message could not be kept
   * (spool full, disk error): the source must not acknowledge it, so the device sends it again.
   * Calls may overlap; each settles on its own.
   */
  handle(message: SourceMessage): Promise<Verdict>;
  /** Records a packet the source dropped unread (too large) in the rejects log; never throws. */
  rejectOversize(report: OversizeReport): void;
}

/**
 * A source of device messages. Started after ingestion, with it; stopped before it. `stop()`
 * is idempotent: it stops taking messages and closes the source's connections; messages already
 * handed in are finished by ingestion (Pipeline.settle), never dropped.
 */
export interface MessageSource {
  /** For logs: "embedded", "external". */
  readonly name: string;
  start(ingestion: Ingestion): Promise<void>;
  stop(): Promise<void>;
  /** Sends to devices as the gateway (feedback at QoS 0, retained status at QoS 1). */
  publish(topic: string, payload: string | Buffer, opts?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** True while the device's connection cannot take `bytes` more; feedback is skipped then. */
  isBackedUp(deviceId: string, bytes?: number): boolean;
}
