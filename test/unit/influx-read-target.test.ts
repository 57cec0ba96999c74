// Which credentials every read of InfluxDB sends (storage/influxql.ts influxReadTarget, authHeaders):
// 1.x a user (the read-only one when configured, else the writer's), 2.x/3.x a token through the
// v1-compatible /query of the bucket's database; and no message of the client carries the secret.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { authHeaders, describeTarget, influxReadTarget, refusedQuery } from '../../src/storage/influxql.js';

const influxOf = (influx: Record<string, string>) => loadConfig({ flags: { influx } }).influx;
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('influxReadTarget', () => {
  it.each([
    ['no credentials', {}, { url: 'http://i:8086', db: 'lab' }, {}],
    [
      "the writer's user when no read user is set",
      { username: 'writer', password: 'w-pw' },
      { url: 'http://i:8086', db: 'lab', auth: { kind: 'basic', username: 'writer', password: 'w-pw' } },
      { authorization: basic('writer', 'w-pw') },
    ],
    [
      'the read-only user when set',
      { username: 'writer', password: 'w-pw', readUsername: 'reader', readPassword: 'r-pw' },
      { url: 'http://i:8086', db: 'lab', auth: { kind: 'basic', username: 'reader', password: 'r-pw' } },
      { authorization: basic('reader', 'r-pw') },
    ],
    [
      'v2: the write token, on the database named like the bucket',
      { api: 'v2', bucket: 'b1', token: 'write-tok' },
      { url: 'http://i:8086', db: 'b1', auth: { kind: 'token', token: 'write-tok' } },
      { authorization: 'Token write-tok' },
    ],
    [
      'v2: the read token when set',
      { api: 'v2', bucket: 'b1', token: 'write-tok', readToken: 'read-tok' },
      { url: 'http://i:8086', db: 'b1', auth: { kind: 'token', token: 'read-tok' } },
      { authorization: 'Token read-tok' },
    ],
  ])('%s', (_name, influx, target, headers) => {
    const t = influxReadTarget(influxOf({ url: 'http://i:8086', db: 'lab', ...influx }));
    expect(t).toEqual(target);
    expect(authHeaders(t.auth)).toEqual(headers);
  });
});

describe('refusals name URL, database and user, never the secret', () => {
  const reader = {
    url: 'http://i:8086',
    db: 'lab',
    auth: { kind: 'basic', username: 'r', password: 's3cret' },
  } as const;
  const token = { url: 'http://i:8086', db: 'b1', auth: { kind: 'token', token: 't0ken' } } as const;
  it.each([
    [
      reader,
      401,
      'LL_INFLUX_AUTH',
      /^InfluxDB at http:\/\/i:8086 \(user "r"\) refused the read \(HTTP 401: nope\); check influx\.readUsername/,
    ],
    [reader, 403, 'LL_INFLUX_AUTH', /; give the user read access: GRANT READ ON "lab" TO "r"$/],
    [
      token,
      401,
      'LL_INFLUX_AUTH',
      /^InfluxDB at http:\/\/i:8086 \(with a token\) refused the read .*check influx\.readToken/,
    ],
    [
      token,
      404,
      'LL_INFLUX_QUERY',
      /^InfluxDB at http:\/\/i:8086 \(with a token\) refused a query on database "b1" \(HTTP 404: nope\)$/,
    ],
    [reader, 200, 'LL_INFLUX_QUERY', /refused a query on database "lab" \(nope\)$/],
  ] as const)('%# HTTP %s: %s', (target, status, code, message) => {
    const err = refusedQuery(target, status, 'nope');
    expect(err).toMatchObject({ code, influxStatus: status, influxMessage: 'nope' });
    expect(err.message).toMatch(message);
    expect(err.message).not.toMatch(/s3cret|t0ken/);
    expect(describeTarget(target)).not.toMatch(/s3cret|t0ken/);
  });
});
