// The data folder's layout has one owner (src/config/data-paths.ts): the writers of the logs and
// their readers (housekeeping, the quality report) take names from it, so they cannot drift apart.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REJECTS_LOG_NAME, ROTATED_LOG_NAME, resolveDataPaths } from '../../src/config/data-paths.js';
import { runHousekeeping } from '../../src/jobs/housekeeping.js';
import { createLogger } from '../../src/log.js';
import { createRejectsLog } from '../../src/storage/rejects-log.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('data folder paths', () => {
  it('puts every file and folder directly under the data folder, under the names the docs give', () => {
    const p = resolveDataPaths('/var/lib/livinglab');
    expect({ ...p, rotatedLog: p.rotatedLog('events', new Date('2026-11-22T10:00:00.123Z')) }).toEqual({
      rejectsLog: '/var/lib/livinglab/rejects.ndjson',
      eventsLog: '/var/lib/livinglab/events.ndjson',
      auditLog: '/var/lib/livinglab/audit.ndjson',
      spool: '/var/lib/livinglab/spool',
      reports: '/var/lib/livinglab/reports',
      simulations: '/var/lib/livinglab/simulations',
      jobsState: '/var/lib/livinglab/jobs.json',
      livenessState: '/var/lib/livinglab/liveness.json',
      lock: '/var/lib/livinglab/lock',
      rotatedLog: '/var/lib/livinglab/events-2026-11-22T10-00-00-123Z.ndjson',
    });
  });

  it('a rotated rejects log is counted by the quality report and swept by housekeeping; the current one is kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'll-paths-'));
    dirs.push(dir);
    const log = createLogger({ level: 'silent' });
    const rejects = createRejectsLog({ dataDir: dir, maxBytesPerClientPerDay: 10_000, log });
    await rejects.start();
    await writeFile(resolveDataPaths(dir).eventsLog, '{"event":"offline"}\n');
    await rejects.append({
      receivedAt: '2026-11-22T10:00:00.000Z',
      clientId: 'ox-1',
      topic: 'lab/odense/pulse-oximeter/ox-1/telemetry',
      rejections: [{ reason: 'json', errors: [{ path: '', message: 'not valid JSON' }] }],
      payload: Buffer.from('x'),
    });
    const rotated = await rejects.rotate();
    expect(rotated).toBeDefined();
    const name = basename(rotated as string);
    expect(REJECTS_LOG_NAME.test(name) && ROTATED_LOG_NAME.test(name)).toBe(true);
    expect(REJECTS_LOG_NAME.test('rejects.ndjson') && !ROTATED_LOG_NAME.test('rejects.ndjson')).toBe(true);

    const result = await runHousekeeping({
      dataDir: dir,
      rejects,
      retentionMs: 0,
      log,
      now: Date.now() + 60_000,
    });
    await rejects.stop();
    expect(result.deleted).toContain(rotated);
    // The events log was rotated by this run and then swept with it; the current logs stay.
    expect(result.rotated).toHaveLength(1);
    expect((await readdir(dir)).sort()).toEqual(['rejects.ndjson']);
  });
});
