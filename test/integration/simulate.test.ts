// A simulated fleet through the real gateway and a real influxd: the ground truth of the scenario
// must match what lands in InfluxDB and in the rejects log.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { simulate } from '../../src/cli/simulate.js';
import { useLab } from '../helpers/fixture.js';

const ROOT = new URL('../../', import.meta.url).pathname;

const lab = useLab({ devices: [] });

// The demo residents go out during the day (their pulse oximeters say nothing then), so a run at
// `now-2h` passed or failed by the hour the suite ran. The clock-skew incident needs simulated time
// close to the gateway's clock, so the start stays `now-2h`; instead the fleet's time zone is chosen
// so that the two simulated hours are the residents' night (local start between 00:00 and 00:59).
function fleetAtNight(dir: string): string {
  const utcHour = new Date(Date.now() - 2 * 3_600_000).getUTCHours();
  const offset = ((((11 - utcHour) % 24) + 24) % 24) - 11;
  const zone = `${offset < 0 ? '-' : '+'}${String(Math.abs(offset)).padStart(2, '0')}:00`;
  const demo = readFileSync(join(ROOT, 'simulators/fleets/demo.yaml'), 'utf8');
  const file = join(dir, 'demo-at-night.yaml');
  writeFileSync(file, demo.replace(/^timezone: .*$/m, `timezone: "${zone}"`));
  return file;
}

/**
 * The offline device came back and delivered its buffer as one batch: every reading the simulator
 * had acknowledged for it inside the window (from the ack log) is stored, no more, no fewer.
 */
async function expectOfflineBatchStored(
  ackLog: string,
  events: { type: string; at: string; until: string }[],
) {
  const off = events.find((e) => e.type === 'offline') as { at: string; until: string };
  const inWindow = (ts: string) => ts >= off.at && ts < off.until;
  const ackedInWindow = readFileSync(ackLog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { device: string; ts: string })
    .filter((a) => a.device === 'demo-01-pulse-oximeter' && inWindow(a.ts))
    .map((a) => Date.parse(a.ts))
    .sort((a, b) => a - b);
  expect(ackedInWindow.length, 'readings acknowledged inside the offline window').toBeGreaterThan(0);
  const during = await lab.influx.query<{ time: number; spo2: number }>(
    lab.gw.db,
    `SELECT spo2 FROM pulse_oximeter WHERE device_id = 'demo-01-pulse-oximeter' AND time >= '${off.at}' AND time < '${off.until}'`,
  );
  expect(during.map((r) => Math.round(r.time / 1e6)).sort((a, b) => a - b)).toEqual(ackedInWindow);
}

describe('livinglab simulate --verify', () => {
  it('runs the demo fleet with every incident; InfluxDB and the rejects log match the ground truth', {
    timeout: 120_000,
  }, async () => {
    const lines: string[] = [];
    const out = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
    const ackLog = join(lab.gw.dir, 'acks.ndjson');
    const result = await simulate(
      {
        fleet: fleetAtNight(lab.gw.dir),
        scenario: join(ROOT, 'simulators/scenarios/incidents.yaml'),
        speed: '1200',
        start: 'now-2h',
        duration: '2h',
        mqttUrl: lab.gw.mqttUrl,
        registry: lab.gw.registryFile,
        influxUrl: lab.influx.url,
        influxDb: lab.gw.db,
        dataDir: join(lab.gw.dir, 'data'),
        ackLog,
        verify: true,
      },
      {},
      out,
    );
    const text = lines.join('');
    expect(text, lines.slice(-14).join('')).toContain('verify: OK');
    expect(result.verified).toBe(true);
    const c = result.counters;
    expect(c.devices).toBe(24);
    expect(c.failedPublishes).toBe(0);
    expect(c.invalidSent).toBeGreaterThan(3);
    expect(c.rejectionsReceived).toBeGreaterThanOrEqual(c.invalidSent);
    // One ack-log line per acknowledged reading.
    expect(readFileSync(ackLog, 'utf8').trim().split('\n')).toHaveLength(c.readingsAcked);

    const truth = JSON.parse(readFileSync(result.groundTruthFile, 'utf8')) as {
      events: { type: string; at: string; until: string; site?: string; device?: string }[];
      invalidPayloads: { device: string; kind: string; expectedReason: string }[];
    };
    expect(truth.events.map((e) => e.type).sort()).toEqual([
      'battery-drain',
      'clock-skew',
      'fall',
      'fever',
      'hypoxia',
      'offline',
      'wandering',
    ]);
    expect(
      truth.invalidPayloads.some((p) => p.kind === 'clock-skew' && p.device === 'demo-03-pulse-oximeter'),
    ).toBe(true);

    // The fall: a fall event in the bathroom of demo-01, within minutes of the scripted time.
    const fallAt = Date.parse(truth.events.find((e) => e.type === 'fall')?.at ?? '');
    const falls = await lab.influx.query<{ time: number; room: string; event: string }>(
      lab.gw.db,
      `SELECT event, room FROM fall_detector_event WHERE device_id = 'demo-01-fall-detector' AND event = 'fall'`,
    );
    expect(falls.some((f) => f.room === 'bathroom' && Math.abs(f.time / 1e6 - fallAt) < 3 * 60_000)).toBe(
      true,
    );
    // Hypoxia: SpO2 of demo-05 at or below 89 % during the episode.
    const hyp = truth.events.find((e) => e.type === 'hypoxia') as { at: string };
    const low = await lab.influx.query<{ min: number }>(
      lab.gw.db,
      `SELECT min(spo2) FROM pulse_oximeter WHERE device_id = 'demo-05-pulse-oximeter' AND time >= '${hyp.at}' AND time < '${hyp.at}' + 30m`,
    );
    expect(low[0]?.min).toBeLessThanOrEqual(89);
    await expectOfflineBatchStored(ackLog, truth.events);
  });

  it('reuses the provisioned devices on a second run and writes nothing new to the registry', {
    timeout: 60_000,
  }, async () => {
    const before = readFileSync(lab.gw.registryFile, 'utf8');
    const result = await simulate(
      {
        fleet: join(ROOT, 'simulators/fleets/demo.yaml'),
        speed: '7200',
        start: 'now-20m',
        duration: '20m',
        mqttUrl: lab.gw.mqttUrl,
        registry: lab.gw.registryFile,
        influxUrl: lab.influx.url,
        influxDb: lab.gw.db,
        dataDir: join(lab.gw.dir, 'data'),
        verify: true,
      },
      {},
      undefined,
    );
    expect(result.verified).toBe(true);
    expect(readFileSync(lab.gw.registryFile, 'utf8')).toBe(before);
  });
});
