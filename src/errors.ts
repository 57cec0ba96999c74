// The catalogue of start-up and operational error codes. Bad device input is never an exception:
// it is a Rejection value (see ingest/). GatewayError is for problems a technician must fix:
// a broken registry file, a schema that cannot load, a bad flag. Imports nothing.

export const ERROR_CODES = {
  LL_CONFIG_INVALID: 'A configuration value (file, environment or flag) is invalid',
  LL_REGISTRY_PARSE: 'The registry file is not valid YAML or does not match the registry format',
  LL_REGISTRY_CONFLICT: 'A registry change conflicts with what is already registered',
  LL_REGISTRY_NOT_FOUND: 'The named device, account or site is not in the registry',
  LL_PASSWORD_FORMAT: 'A password hash is in a format the gateway cannot verify',
  LL_SCHEMA_INVALID: 'A device schema file is invalid or inconsistent with its time-series mapping',
  LL_SCHEMA_UNKNOWN: 'No schema is loaded for the requested device type or version',
  LL_INFLUX_UNAVAILABLE: 'InfluxDB could not be reached or refused the request',
  LL_LISTEN_FAILED: 'A network listener could not be started',
  LL_DATA_DIR_LOCKED: 'Another gateway is running on the same data folder',
  LL_DATA_DIR_UNUSABLE: 'The data folder cannot be created or written',
  LL_INPUT_INVALID: 'A file or value given on the command line is invalid',
  LL_EXPORT_INCOMPLETE: 'An export stopped before its last row; what was written is incomplete',
  LL_SPOOL_WRITE_FAILED: 'A spool write failed (full disk, I/O error); the readings were not acknowledged',
  LL_SPOOL_CUT_FAILED: 'A failed spool write could not be cut back out of its segment; appends are refused',
  LL_SPOOL_READ_FAILED: 'The spool could not be read; the readings stay in it and are read again',
  LL_AUTH_BUSY: 'Too many password checks are queued; the login was refused, not queued',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
