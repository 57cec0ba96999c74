// One contract, run against each message source (the embedded broker, an external broker): what a
// source owes ingestion and the devices. The source under test feeds a real pipeline writing to a
// real spool in a temporary folder; devices are MQTT.js clients.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { bundledSchemasDir } from '../../src/config/load.js';
import { createPipeline, type Pipeline } from '../../src/ingest/pipeline.js';
import type { MessageSource, SourceMessage } from '../../src/ingest/source.js';
import { createLogger, type Logger } from '../../src/log.js';
import { writeRegistryFile } from '../../src/registry/file.js';
import { createRegistry, type Registry } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { loadSchemas } from '../../src/schemas/load.js';
import type { Point } from '../../src/storage/point.js';
import { createQueueSink } from '../../src/storage/queue-sink.js';
import { createRejectsLog } from '../../src/storage/rejects-log.js';
import { createSpool, type Spool } from '../../src/storage/spool/index.js';
import { withDevices } from '../helpers/gateway.js';
import { collect, eventually } from '../helpers/mqtt.js';

export interface SourceUnderTest {
  source: MessageSource;
  /** A device client connected (and logged in) wherever this source's devices connect. */
  connectDevice(deviceId: string): Promise<MqttClient>;
  /**
   * PUBACKs the source has sent to an external broker. Absent for a source that is itself the
   * broker: there the device's own PUBACK is the source's.
   */
  acknowledgements?: () => number;
  /** An external broker keeps the devices' connections when the source stops. */
  devicesStayConnected?: boolean;
}

export interface SourceHarness {
  /** The source, not started, for the devices in `registry`. */
  create(deps: { registry: Registry; log: Logger }): SourceUnderTest;
}

const OX = { id: 'src-ox-1', type: 'pulse-oximeter', site: 'suite' };
const TELEMETRY = 'lab/suite/pulse-oximeter/src-ox-1/telemetry';
const REJECTED = 'lab/suite/pulse-oximeter/src-ox-1/rejected';
const reading = (spo2: number) =>
  JSON.stringify({ ts: new Date(Date.now() - 30_000).toISOString(), spo2, pulse: 70 });

/** A spool append that waits for `release()`: the time between hand-off and commit, held open. */
function holdableSink(spool: Spool) {
  const sink = createQueueSink(spool);
  let gate: Promise<void> | undefined;
  let release = () => {};
  let entered = 0;
  return {
    entered: () => entered,
    hold() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release(),
    async append(points: readonly Point[]) {
      entered++;
      await gate;
      await sink.append(points);
    },
  };
}

async function startIngestion(harness: () => SourceHarness) {
  const log = createLogger({ level: 'silent' });
  const dir = await mkdtemp(join(tmpdir(), 'll-source-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const registryFile = join(dir, 'lab.yaml');
  await writeRegistryFile(registryFile, withDevices(EMPTY_REGISTRY, [OX]));
  const registry = createRegistry({ file: registryFile, pollMs: 60_000, log });
  await registry.start();
  onTestFinished(() => registry.stop());
  const spool = createSpool({ dir: join(dir, 'spool'), maxBytes: 10_000_000, log });
  await spool.start();
  onTestFinished(() => spool.stop());
  const rejects = createRejectsLog({ dataDir: dir, maxBytesPerClientPerDay: 1_000_000, log });
  await rejects.start();
  onTestFinished(() => rejects.stop());
  const underTest = harness().create({ registry, log });
  const { source, connectDevice } = underTest;
  const sink = holdableSink(spool);
  const pipeline: Pipeline = createPipeline({
    schemas: loadSchemas(bundledSchemasDir()),
    sink,
    rejects,
    sendFeedback: (topic, payload) => source.publish(topic, payload),
    window: { maxFutureMs: 300_000, maxAgeMs: 86_400_000 },
    maxBatchReadings: 100,
    log,
  });
  const handed: SourceMessage[] = [];
  await source.start({
    handle: (message) => {
      handed.push(message);
      return pipeline.handle(message);
    },
    rejectOversize: (report) => pipeline.rejectOversize(report),
  });
  onTestFinished(() => source.stop());
  return { ...underTest, source, connectDevice, pipeline, spool, sink, handed };
}

export function sourceSuite(name: string, harness: () => SourceHarness): void {
  describe(`MessageSource contract: ${name}`, () => {
    it('acknowledges a QoS 1 message only after its reading is committed to the spool', async () => {
      const { connectDevice, spool, sink, acknowledgements } = await startIngestion(harness);
      const device = await connectDevice(OX.id);
      onTestFinished(() => device.endAsync());
      sink.hold();
      if (acknowledgements) {
        // The broker acknowledged the device; the source's own PUBACK to the broker is what counts.
        // A source acknowledging on receipt would have sent it before the message reached the sink.
        await device.publishAsync(TELEMETRY, reading(97), { qos: 1 });
        await eventually(
          async () => sink.entered(),
          (n) => n === 1,
        );
        expect(acknowledgements()).toBe(0);
        sink.release();
        await eventually(
          async () => acknowledgements(),
          (n) => n === 1,
        );
        expect(spool.stats.unconfirmedRecords).toBe(1);
        return;
      }
      let acked = false;
      const publishing = device.publishAsync(TELEMETRY, reading(97), { qos: 1 }).then(() => {
        acked = true;
        return spool.stats.unconfirmedRecords;
      });
      const feedback = await collect(device, REJECTED);
      await eventually(
        async () => sink.entered(),
        (n) => n === 1,
      );
      // Marker: feedback to a later message on the same connection arrives after any PUBACK the
      // source had already sent for the first, so "not acknowledged" is seen, not assumed.
      await device.publishAsync(TELEMETRY, reading(104), { qos: 0 });
      await feedback.next(1);
      expect(acked).toBe(false);
      sink.release();
      expect(await publishing).toBe(1);
    });

    it('acknowledges a rejected message and answers it with feedback on the rejected topic', async () => {
      const { connectDevice, spool } = await startIngestion(harness);
      const device = await connectDevice(OX.id);
      onTestFinished(() => device.endAsync());
      const feedback = await collect(device, REJECTED);
      await device.publishAsync(TELEMETRY, reading(104), { qos: 1 });
      const [msg] = await feedback.next(1);
      expect(JSON.parse(msg?.payload.toString() ?? '{}')).toMatchObject({
        topic: TELEMETRY,
        reason: 'schema',
        errors: [{ path: '/spo2', message: 'must be <= 100', value: 104 }],
      });
      expect(spool.stats.unconfirmedRecords).toBe(0);
    });

    it('hands each message in with the identity the device proved at login', async () => {
      const { connectDevice, handed } = await startIngestion(harness);
      const device = await connectDevice(OX.id);
      onTestFinished(() => device.endAsync());
      const payload = reading(95);
      await device.publishAsync(TELEMETRY, payload, { qos: 1 });
      // An external broker acknowledges the device before it hands the message on.
      await eventually(
        async () => handed.length,
        (n) => n >= 1,
      );
      expect(handed).toHaveLength(1);
      const [message] = handed;
      expect(message?.identity).toMatchObject({ kind: 'device', id: OX.id, device: { site: 'suite' } });
      expect(message).toMatchObject({ topic: TELEMETRY, clientId: OX.id });
      expect(message?.payload.toString()).toBe(payload);
      expect(message?.receivedAt).toBeInstanceOf(Date);
    });

    it('stop() takes no more messages and leaves the one under way to finish in the spool', async () => {
      const { source, connectDevice, pipeline, spool, sink, handed, devicesStayConnected } =
        await startIngestion(harness);
      const device = await connectDevice(OX.id);
      device.on('error', () => undefined);
      sink.hold();
      device.publish(TELEMETRY, reading(96), { qos: 1 });
      await eventually(
        async () => sink.entered(),
        (n) => n === 1,
      );
      await source.stop();
      if (!devicesStayConnected)
        await eventually(
          async () => device.connected,
          (c) => !c,
        );
      else onTestFinished(() => device.endAsync());
      sink.release();
      await pipeline.settle();
      expect(handed).toHaveLength(1);
      expect(spool.stats.unconfirmedRecords).toBe(1);
      await source.stop();
    });
  });
}
