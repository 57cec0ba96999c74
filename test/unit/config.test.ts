import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { createFrameScanner } from '../../src/broker/frame-guard.js';
import { addServeOptions, configFromFlags } from '../../src/cli/options.js';
import { registerServeCommand } from '../../src/cli/serve.js';
import { durationPattern, parseDuration, parseSize } from '../../src/config/duration.js';
import { flagName } from '../../src/config/example.js';
import { listOptions, loadConfig } from '../../src/config/load.js';
import { type Config, configKeyOf, type LeafOption } from '../../src/config/schema.js';
import { loadYamlFile, readYamlFile } from '../../src/config/yaml-file.js';
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
    ['1500', undefined],
    ['1.5 h', undefined],
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

describe('one definition of every option', () => {
  const options = listOptions();
  const defaultOf = (o: LeafOption) => o.node.default;
  const configValue = (config: Config, o: LeafOption): unknown => {
    let node: unknown = config;
    for (const key of o.path.slice(0, -1)) node = (node as Record<string, unknown>)[key];
    return (node as Record<string, unknown>)[configKeyOf(o.path[o.path.length - 1] as string, o.node)];
  };

  it('gives every option a description, a default and its own LIVINGLAB_* name and flag', () => {
    for (const o of options) {
      expect(o.node.description, o.env).toMatch(/^[A-Z].{8,}/);
      expect(defaultOf(o), o.env).not.toBeUndefined();
      expect(o.env).toMatch(/^LIVINGLAB_[A-Z0-9_]+$/);
    }
    const flags = options.flatMap((o) => (o.node.flag ? [o.node.flag] : []));
    expect(new Set(flags).size).toBe(flags.length);
    expect(flags).toContain('--mqtt-port <port>');
  });

  it('loads into a Config with one key per option: durations in ms, sizes in bytes', () => {
    const config = loadConfig({ env: { LIVINGLAB_SCHEMAS_DIR: 'schemas' } });
    const leaves = (v: unknown): number =>
      typeof v === 'object' && v !== null ? Object.values(v).reduce((n: number, c) => n + leaves(c), 0) : 1;
    expect(leaves(config)).toBe(options.length);
    for (const o of options) {
      const value = configValue(config, o);
      if (o.type === 'duration') expect(value, o.env).toBe(parseDuration(defaultOf(o) as string));
      else if (o.type === 'size') expect(value, o.env).toBe(parseSize(defaultOf(o) as string));
      else if (o.env !== 'LIVINGLAB_SCHEMAS_DIR') expect(value, o.env).toEqual(defaultOf(o));
    }
  });

  it('maps every serve flag to its option, and every option of serve but --config and --fleet is a flag of the schema', () => {
    const program = new Command().exitOverride();
    registerServeCommand(program, {});
    const serve = program.commands.find((c) => c.name() === 'serve') as Command;
    const flagged = options.filter((o) => o.node.flag);
    expect(serve.options.map((o) => o.long).sort()).toEqual(
      ['--config', '--fleet', ...flagged.map((o) => flagName(o.node.flag as string))].sort(),
    );
    for (const o of flagged) {
      const def = defaultOf(o);
      const [text, expected] =
        o.type === 'boolean'
          ? [undefined, false]
          : o.type === 'duration'
            ? ['1234ms', 1234]
            : o.type === 'size'
              ? ['3MiB', 3 * 1024 ** 2]
              : o.type === 'integer'
                ? [String((def as number) + 1), (def as number) + 1]
                : o.type === 'enum'
                  ? [o.node.enum?.find((v) => v !== def), o.node.enum?.find((v) => v !== def)]
                  : [`${def}x`, `${def}x`];
      const cmd = addServeOptions(new Command().exitOverride());
      cmd.parse([flagName(o.node.flag as string), ...(text === undefined ? [] : [text])], { from: 'user' });
      const config = configFromFlags(cmd.opts(), {});
      expect(configValue(config, o), o.node.flag).toEqual(expected);
    }
  });
});

describe('durations in the configuration', () => {
  const problemOf = (load: () => unknown): string => {
    try {
      load();
    } catch (err) {
      expect(err).toMatchObject({ code: 'LL_CONFIG_INVALID' });
      return (err as Error).message;
    }
    return '';
  };
  const file = (text: string) => {
    const f = join(mkdtempSync(join(tmpdir(), 'll-dur-')), 'gw.yaml');
    writeFileSync(f, text);
    return f;
  };

  it('refuses a retention without a unit from the file, the environment and a flag, showing it with one', () => {
    const expected = 'jobs.housekeeping.retention: 90 has no unit: write "90d" (units: ms, s, m, h, d)';
    expect(
      problemOf(() => loadConfig({ file: file('jobs:\n  housekeeping:\n    retention: 90\n') })),
    ).toContain(expected);
    expect(problemOf(() => loadConfig({ env: { LIVINGLAB_JOBS_HOUSEKEEPING_RETENTION: '90' } }))).toContain(
      expected,
    );
    const cmd = addServeOptions(new Command().exitOverride());
    cmd.parse(['--flush-interval', '50'], { from: 'user' });
    expect(problemOf(() => configFromFlags(cmd.opts(), {}))).toContain(
      'writer.flushInterval: 50 has no unit: write "50s"',
    );
  });

  it('refuses 0 where it makes no sense and a retention under a day, and says the least value', () => {
    const message = problemOf(() =>
      loadConfig({
        flags: {
          jobs: { housekeeping: { retention: '12h' } },
          writer: { maxRetryDelay: '0s' },
          registryPoll: 'soon',
        },
      }),
    );
    expect(message).toContain('jobs.housekeeping.retention: "12h" is too short: it must be at least 1d');
    expect(message).toContain('writer.maxRetryDelay: "0s" is too short: it must be at least 1ms');
    expect(message).toContain(
      'registryPoll: "soon" is not a duration: write a number and a unit, for example "1s"',
    );
    // One line per option: ajv's own "must match pattern" is not repeated beside ours.
    expect(message).not.toContain('must match pattern');
    // Where 0 means something (no wait on shutdown, nothing from the future), it is taken.
    expect(loadConfig({ flags: { shutdownTimeout: '0s', time: { maxFuture: '0s' } } })).toMatchObject({
      shutdownTimeoutMs: 0,
      time: { maxFutureMs: 0 },
    });
    expect(
      loadConfig({ flags: { jobs: { housekeeping: { retention: '1d' } } } }).jobs.housekeeping.retentionMs,
    ).toBe(86_400_000);
  });
});

describe('duration syntax', () => {
  it.each([
    [{}, ['5m', '250ms'], ['1.5h', '5', '-5m', '5 m']],
    [{ fraction: true }, ['1.5h', '7d'], ['5', '-5m']],
    [{ signed: true }, ['-5m', '30s'], ['1.5h', '5']],
    [{ fraction: true, positive: true }, ['0.5s', '10s', '1h'], ['0s', '0.0m', '00ms', '5']],
  ])(
    'durationPattern(%j) admits %j, refuses %j, and parseDuration reads what it admits',
    (opts, good, bad) => {
      const re = new RegExp(durationPattern(opts));
      for (const text of good) {
        expect(re.test(text), text).toBe(true);
        expect(parseDuration(text.replace(/^-/, '')), text).toBeGreaterThan(0);
      }
      for (const text of bad) expect(re.test(text), text).toBe(false);
    },
  );
});

describe('YAML files', () => {
  const write = (text: string) => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-yaml-')), 'f.yaml');
    writeFileSync(file, text);
    return file;
  };
  const validate = new Ajv({ allErrors: true }).compile<{ a: { b: number } }>({
    type: 'object',
    additionalProperties: false,
    properties: { a: { type: 'object', properties: { b: { type: 'integer' } } } },
  });

  it('names file:line for each value the schema refuses', () => {
    const file = write('# comment\na:\n  b: two\nc: 1\n');
    expect(() => loadYamlFile(file, validate, 'LL_INPUT_INVALID', 'fleet file')).toThrow(
      `${file}:4: (top level): must NOT have additional properties ("c")\n${file}:3: a.b: must be integer`,
    );
    expect(loadYamlFile(write('a:\n  b: 2\n'), validate, 'LL_INPUT_INVALID')).toEqual({ a: { b: 2 } });
  });

  it('names file:line for a syntax error and says when the file cannot be read, with the code given', () => {
    const file = write('a:\n  b: 1\n  b: 2\n');
    expect(() => readYamlFile(file, 'LL_CONFIG_INVALID')).toThrow(new RegExp(`^${file}:3: `));
    expect(() => readYamlFile(write('- 1\n'), 'LL_CONFIG_INVALID')).toThrow(
      /:1: top level must be a mapping$/,
    );
    const missing = join(tmpdir(), 'll-no-such-dir', 'x.yaml');
    let err: unknown;
    try {
      loadConfig({ file: missing });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'LL_CONFIG_INVALID',
      message: expect.stringMatching(/^cannot read config file /),
    });
  });
});
