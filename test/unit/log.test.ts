// The logger keeps an error's stack and code (so a log line points at the failing call) and never
// lets a secret or a payload out through the fields an error carries.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { createLogger, formatLogLine } from '../../src/log.js';

function sink(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  it('logs { err } with its type, message, stack and errno code', () => {
    const { lines, stream } = sink();
    const log = createLogger({ level: 'info', destination: stream });
    const err = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    log.error({ err }, 'spool write failed');
    const logged = lines[0]?.err as Record<string, unknown>;
    expect(logged).toMatchObject({ type: 'Error', message: 'no space left on device', code: 'ENOSPC' });
    expect(String(logged.stack)).toMatch(/^Error: no space left on device\n\s+at .*log\.test\.ts/);
  });

  it('keeps a GatewayError code and redacts secrets and payloads an error carries', () => {
    const { lines, stream } = sink();
    const log = createLogger({ level: 'info', destination: stream });
    const err = Object.assign(new GatewayError('LL_INFLUX_UNAVAILABLE', 'refused'), {
      options: { password: 'hunter2', token: 't0k3n' },
      payload: '{"spo2":97}',
    });
    log.error({ err }, 'database unreachable');
    const text = JSON.stringify(lines[0]);
    expect(lines[0]?.err).toMatchObject({ type: 'GatewayError', code: 'LL_INFLUX_UNAVAILABLE' });
    expect(text).not.toMatch(/hunter2|t0k3n|spo2/);
    expect(lines[0]?.err).toMatchObject({
      options: { password: '[redacted]', token: '[redacted]' },
      payload: '[redacted]',
    });
  });
});

describe('formatLogLine (--log-format pretty)', () => {
  it('prints time, level, module, message and the other fields as key=value', () => {
    const line = JSON.stringify({
      level: 30,
      time: '2026-11-29T14:52:28.554Z',
      service: 'livinglab',
      module: 'broker',
      port: 1883,
      host: '0.0.0.0',
      msg: 'MQTT listener started',
    });
    expect(formatLogLine(line)).toBe(
      '14:52:28.554 INFO  [broker] MQTT listener started port=1883 host=0.0.0.0\n',
    );
  });

  it('shows an error as type, code and message, with its stack at error level', () => {
    const line = JSON.stringify({
      level: 50,
      time: '2026-11-29T14:52:28.554Z',
      err: {
        type: 'Error',
        code: 'ENOSPC',
        message: 'no space left',
        stack: 'Error: no space left\n    at f (x.js:1:1)',
      },
      msg: 'spool write failed',
    });
    expect(formatLogLine(line)).toBe(
      '14:52:28.554 ERROR spool write failed err="Error ENOSPC: no space left"\n    at f (x.js:1:1)\n',
    );
  });

  it('passes a line that is not JSON through unchanged', () => {
    expect(formatLogLine('not json')).toBe('not json\n');
  });
});
