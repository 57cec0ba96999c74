// The one logger factory. Structured JSON (pino); secrets and payloads are redacted so that a
// stray `log.info({payload})` cannot leak health data or a password. Imports nothing but pino.
// Errors are logged as `{ err }`, never `err.message`: the serializer keeps type, message, stack and
// the error's own fields (errno codes), and the redact paths reach into `err` too, so a field an
// error carries (a GatewayError's detail, a client's options) cannot leak a secret or a payload.
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

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
];

export function createLogger(opts: { level: LogLevel; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'livinglab' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
