// The one logger factory. Structured JSON (pino); secrets and payloads are redacted so that a
// stray `log.info({payload})` cannot leak health data or a password. Imports nothing but pino.
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
];

export function createLogger(opts: { level: LogLevel; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'livinglab' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
