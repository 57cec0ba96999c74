// One suite, run against each Writer implementation (influx-v1 on influxd, influx-v2 on VictoriaMetrics).
import { describe, expect, it } from 'vitest';
import type { Writer } from '../../src/storage/writer.js';

export interface WriterHarness {
  /** A writer for a running database. */
  writer: () => Writer;
  /** A writer pointed at a port nobody listens on. */
  unreachable: () => Writer;
  /** spo2 values stored for `deviceId`, by timestamp in ms. */
  readBack: (deviceId: string) => Promise<Map<number, number>>;
}

export function writerSuite(name: string, harness: () => WriterHarness): void {
  describe(`Writer contract: ${name}`, () => {
    it('writes batches of lines that read back with their values and timestamps', async () => {
      const h = harness();
      const w = h.writer();
      await w.start();
      const base = Date.now() - 2_000_000;
      const lines = Array.from(
        { length: 1000 },
        (_, i) =>
          `pulse_oximeter,device_id=${name}-dev,site=suite spo2=${90 + (i % 10)}i,pulse=70i ${(base + i * 1000) * 1_000_000}`,
      );
      expect(await w.write(lines.slice(0, 500))).toEqual({ ok: true });
      expect(await w.write(lines.slice(500))).toEqual({ ok: true });
      // Some databases make writes searchable a moment later: poll.
      let stored = await h.readBack(`${name}-dev`);
      for (let i = 0; i < 50 && stored.size < 1000; i++) {
        await new Promise((r) => setTimeout(r, 200));
        stored = await h.readBack(`${name}-dev`);
      }
      expect(stored.size).toBe(1000);
      expect(stored.get(base + 7000)).toBe(97);
      expect(await w.ping()).toBe(true);
      await w.stop();
    });

    it('reports an unreachable database as "retry", never as a loss', async () => {
      const w = harness().unreachable();
      expect(await w.write(['pulse_oximeter spo2=97i 1'])).toMatchObject({ ok: false, kind: 'retry' });
      expect(await w.ping()).toBe(false);
    });
  });
}
