// The catalogue of start-up and operational error codes. Bad device input is never an exception:
// it is a Rejection value (see ingest/). GatewayError is for problems a technician must fix:
// a broken registry file, a schema that cannot load, a bad flag. Imports nothing.

export const ERROR_CODES = {
  LL_CONFIG_INVALID: 'A configuration value (file, environment or flag) is invalid',
  LL_REGISTRY_PARSE: 'The registry file is not valid YAML or does not match the registry format',
  LL_REGISTRY_CONFLICT: 'A registry change conflicts with what is already registered',
  LL_REGISTRY_LOCKED: 'Another process held the registry edit lock for too long; nothing was changed',
  LL_REGISTRY_NOT_FOUND: 'The named device, account or site is not in the registry',
  LL_REGISTRY_READ_ONLY: 'The registry file must be changed by a migration, but it cannot be written',
  LL_PASSWORD_FORMAT: 'A password hash is in a format the gateway cannot verify',
  LL_SCHEMA_INVALID: 'A device schema file is invalid or inconsistent with its time-series mapping',
  LL_SCHEMA_UNKNOWN: 'No schema is loaded for the requested device type or version',
  LL_INFLUX_UNAVAILABLE: 'InfluxDB could not be reached or refused the request',
  LL_INFLUX_AUTH: "InfluxDB refused the gateway's read credentials (401) or their rights (403)",
  LL_INFLUX_QUERY: 'InfluxDB refused a query (unknown database or bucket mapping, a statement error)',
  LL_LISTEN_FAILED: 'A network listener could not be started',
  LL_BROKER_UNREACHABLE: 'The external MQTT broker (--source external) could not be reached at start-up',
  LL_BROKER_REFUSED: "The external MQTT broker refused the gateway's login or its shared subscription",
  LL_DATA_DIR_LOCKED: 'Another gateway is running on the same data folder',
  LL_DATA_DIR_UNUSABLE: 'The data folder cannot be created or written',
  LL_INPUT_INVALID: 'A file or value given on the command line is invalid',
  LL_EXPORT_INCOMPLETE: 'An export stopped before its last row; what was written is incomplete',
  LL_SPOOL_WRITE_FAILED: 'A spool write failed (full disk, I/O error); the readings were not acknowledged',
  LL_SPOOL_CUT_FAILED: 'A failed spool write could not be cut back out of its segment; appends are refused',
  LL_SPOOL_READ_FAILED: 'The spool could not be read; the readings stay in it and are read again',
  LL_SECRETS_PERMISSIONS:
    'The secrets file can be read by group or others; it is refused until it is mode 0600',
  LL_SECRETS_CONFLICT: 'lab.yaml and the secrets file hold different values for one secret',
  LL_SECRETS_READ_ONLY: 'Secrets must move out of lab.yaml, but the secrets file cannot be written',
  LL_SECRET_MISSING: 'A secret the registry needs (project key, audit key) is not in the secrets file',
  LL_TLS_INVALID:
    'A TLS certificate, key or CA file cannot be read, cannot be parsed, or does not fit its key',
  LL_AUTH_BUSY: 'Too many password checks are queued; the login was refused, not queued',
  LL_AUDIT_WRITE_FAILED: 'The registry was changed but the audit log could not record the change',
  LL_AUDIT_LOCKED: 'Another process has held the audit log lock for too long; nothing was appended',
  LL_AUDIT_KEY_MISSING: 'The audit log is sealed with the audit key, but no audit key is available',
  LL_AUDIT_HEAD_INVALID: 'The audit head file (entry count and last MAC) cannot be read',
  LL_OPS_TOKEN_MISSING: 'The ops listener is bound beyond loopback and no ops token is configured',
  LL_BROKER_HOOKS_TOKEN_MISSING: 'The broker auth hooks listener is enabled and no hooks token is configured',
  LL_MOSQUITTO_FILES_FAILED: 'The Mosquitto password_file and acl_file could not be written',
  LL_BACKUP_FAILED:
    'A backup could not be taken (output folder not empty, registry missing or being edited, a planted link in the data folder, influxd backup failed)',
  LL_BACKUP_INVALID: 'A backup folder does not match its manifest (missing, changed or added files)',
  LL_RESTORE_TARGET_NOT_EMPTY:
    'A restore was asked to write where a data folder or registry files already exist',
  LL_RESTORE_FAILED:
    "A restore failed: InfluxDB's restore (influxd restore -portable), or writing a file (what it wrote was removed)",
  LL_ACCESS_DENIED: 'The gateway refused the token given to a command (401) or it lacks the right (403)',
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
