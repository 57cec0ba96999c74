import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFrameScanner } from '../../src/broker/frame-guard.js';
import { parseDuration } from '../../src/config/duration.js';
import { listOptions, loadConfig } from '../../src/config/load.js';
import { fixedHeader } from '../helpers/raw-mqtt.js';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig();
    expect(c.mqtt).toMatchObject({ port: 1883, maxPacketSize: 262144, connectTimeoutMs: 10_000 });
    expect(c.http.port).toBe(8080);
    expect(c.time).toEqual({ maxFutureMs: 300_000, maxAgeMs: 604_800_000 });
    expect(c.registry).toBe('lab.yaml');
    expect(Object.isFrozen(c.mqtt)).toBe(true);
  });
  it('layers file ← environment ← flags', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-cfg-')), 'gw.yaml');
    writeFileSync(file, 'mqtt:\n  port: 1000\nhttp:\n  port: 2000\ninflux:\n  db: fromfile\n');
    const c = loadConfig({
      file,
      env: { LIVINGLAB_HTTP_PORT: '3000', LIVINGLAB_MQTT_MAX_PACKET_SIZE: '4096' },
      flags: { http: { port: 4000 } },
    });
    expect([c.mqtt.port, c.http.port, c.influx.db, c.mqtt.maxPacketSize]).toEqual([
      1000,
      4000,
      'fromfile',
      4096,
    ]);
  });
  it('reports every bad value at once, by path', () => {
    let message = '';
    try {
      loadConfig({ flags: { mqtt: { port: 70000 }, influx: { url: 'influx:8086' }, bogus: 1 } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('mqtt.port: must be <= 65535');
    expect(message).toContain('influx.url: must match pattern');
    expect(message).toContain('(top level): must NOT have additional properties "bogus"');
  });
  it('derives one LIVINGLAB_* name per option', () => {
    const names = listOptions().map((o) => o.env);
    expect(names).toContain('LIVINGLAB_INFLUX_URL');
    expect(names).toContain('LIVINGLAB_WRITER_FLUSH_INTERVAL');
    expect(new Set(names).size).toBe(names.length);
  });
  it.each([
    ['250ms', 250],
    ['60s', 60_000],
    ['5m', 300_000],
    ['7d', 604_800_000],
    ['1500', 1500],
    ['soon', undefined],
  ])('parseDuration(%s) = %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('frame scanner (aedes#831 guard)', () => {
  const header = fixedHeader;
  it('lets packets under the limit through, across chunk boundaries', () => {
    const s = createFrameScanner(1024);
    const pkt = Buffer.concat([header(3, 500), Buffer.alloc(500)]);
    expect(s.feed(pkt.subarray(0, 1))).toBeUndefined();
    expect(s.feed(pkt.subarray(1, 300))).toBeUndefined();
    expect(s.feed(Buffer.concat([pkt.subarray(300), pkt]))).toBeUndefined();
  });
  it('flags a PUBLISH that declares more than the limit before its body arrives', () => {
    const s = createFrameScanner(1024);
    expect(s.feed(Buffer.concat([header(12, 0), header(3, 200 * 1024 * 1024)]))).toEqual({
      declared: 200 * 1024 * 1024 + 5,
      type: 3,
      limit: 1024,
    });
  });
  it('holds a CONNECT to its own, smaller limit and other packets to the packet limit', () => {
    const s = createFrameScanner(262_144, 8192);
    expect(s.feed(Buffer.concat([header(1, 8000), Buffer.alloc(8000)]))).toBeUndefined();
    expect(s.feed(Buffer.concat([header(3, 100_000), Buffer.alloc(100)]))).toBeUndefined();
    expect(createFrameScanner(262_144, 8192).feed(header(1, 250_000))).toEqual({
      declared: 250_004,
      type: 1,
      limit: 8192,
    });
  });
  it('flags a malformed five-byte remaining length', () => {
    expect(createFrameScanner(1024).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))?.declared).toBe(
      Number.POSITIVE_INFINITY,
    );
  });
});

describe('livinglab.example.yaml', () => {
  it('lists every option with its default and loads as the defaults', async () => {
    const { readFileSync } = await import('node:fs');
    const { renderExampleConfig } = await import('../../src/config/example.js');
    const file = new URL('../../livinglab.example.yaml', import.meta.url).pathname;
    expect(readFileSync(file, 'utf8')).toBe(renderExampleConfig());
    expect(loadConfig({ file })).toEqual(loadConfig());
    // Uncommented, it loads too and still gives the defaults.
    const uncommented = join(mkdtempSync(join(tmpdir(), 'll-ex-')), 'ex.yaml');
    writeFileSync(uncommented, readFileSync(file, 'utf8').replace(/^# (?=\s*[a-zA-Z]+:( |$))/gm, ''));
    expect(loadConfig({ file: uncommented })).toEqual(loadConfig());
  });
});
