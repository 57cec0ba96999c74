// The one logger factory. Structured JSON (pino); secrets and payloads are redacted so that a
// stray `log.info({payload})` cannot leak health data or a password. Imports nothing but pino.
// Errors are logged as `{ err }`, never `err.message`: the serializer keeps type, message, stack and
// the error's own fields (errno codes), and the redact paths reach into `err` too, so a field an
// error carries (a GatewayError's detail, a client's options) cannot leak a secret or a payload.
// On a terminal the same lines can be printed readably (`--log-format pretty`, or `auto` on a TTY):
// a small formatter of our own, since pino-pretty is not a dependency; it formats the JSON pino has
// already redacted, so it can show nothing the JSON would not.
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'auto' | 'json' | 'pretty';

const REDACT_PATHS = [
  'password',
  'token',
  'payload',
  '*.password',
  '*.token',
  '*.payload',
  'secret',
  '*.secret',
  'err.*.password',
  'err.*.token',
  'err.*.payload',
  'err.*.secret',
  // The InfluxDB read credentials' options (config/schema.ts influx.readPassword, influx.readToken).
  '*.readPassword',
  '*.readToken',
];

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLOURS: Record<number, string> = { 40: '33', 50: '31', 60: '31' };
/** Fields every line has, shown in the line's head instead of as key=value. */
const HEAD_FIELDS = new Set(['level', 'time', 'msg', 'module', 'service', 'pid', 'hostname']);

function showValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/** One pino JSON line as `HH:MM:SS.mmm LEVEL [module] message key=value …` (an error as its type and
 * message, its stack indented below at error level and above). Not JSON: returned as it came. */
export function formatLogLine(line: string, colour = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = Number(entry.level);
  const name = LEVEL_NAMES[level] ?? String(entry.level);
  const code = LEVEL_COLOURS[level];
  const shownLevel = colour && code ? `\u001b[${code}m${name}\u001b[0m` : name;
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
  const module = entry.module ? ` [${String(entry.module)}]` : '';
  const parts = [`${time} ${shownLevel}${module} ${String(entry.msg ?? '')}`];
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (HEAD_FIELDS.has(key)) continue;
    if (key === 'err' && value && typeof value === 'object') {
      const err = value as { type?: string; message?: string; code?: string; stack?: string };
      parts.push(
        `err=${showValue(`${err.type ?? 'Error'}${err.code ? ` ${err.code}` : ''}: ${err.message ?? ''}`)}`,
      );
      if (level >= 50 && err.stack) stack = `\n    ${err.stack.split('\n').slice(1).join('\n    ').trim()}`;
    } else parts.push(`${key}=${showValue(value)}`);
  }
  return `${parts.join(' ')}${stack}\n`;
}

/** A destination that writes each line formatted to stderr, synchronously (nothing lost on exit). */
function prettyStderr(colour: boolean): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) process.stderr.write(formatLogLine(line, colour));
    },
  };
}

/** `auto` is pretty only when stderr is a terminal: a service manager, Docker or a pipe gets JSON. */
export function resolveLogFormat(format: LogFormat): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return process.stderr.isTTY ? 'pretty' : 'json';
}

export function createLogger(opts: {
  level: LogLevel;
  format?: LogFormat;
  destination?: DestinationStream;
}): Logger {
  const pretty = !opts.destination && resolveLogFormat(opts.format ?? 'json') === 'pretty';
  return pino(
    {
      level: opts.level,
      base: { service: 'livinglab' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ??
      (pretty ? prettyStderr(process.stderr.isTTY) : pino.destination({ dest: 2, sync: false })),
  );
}
