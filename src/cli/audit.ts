// The audit log from the command line: every command that changes who can see or send what
// records the change after its registry write succeeded, and `livinglab audit verify` checks the
// chain. The log is the data folder's (config `dataDir`), the head sits beside the registry, so a
// command run beside a running gateway appends to the gateway's own log (query/audit.ts orders the
// two writers). Entries name ids and dates, never a secret.
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { auditLogOptions, createAuditLog, type RegistryChange, verifyAuditLog } from '../query/audit.js';
import { addRegistryEditOptions, type CommonFlags, configFromFlags } from './options.js';

type Env = Record<string, string | undefined>;

/** Who ran the command: the account and host, as far as the system knows them. */
function whoRuns(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // A container user without a passwd entry.
    user = `uid ${process.getuid?.() ?? '?'}`;
  }
  return `${user}@${hostname()}`;
}

/**
 * Appends one registry change. Called only after the registry file was written: the change is in
 * force, so a failure here says so rather than suggesting nothing happened.
 */
export async function recordRegistryChange(
  config: Config,
  event: RegistryChange['event'],
  details: Record<string, unknown>,
): Promise<void> {
  const options = auditLogOptions(config);
  const entry: RegistryChange = {
    at: new Date().toISOString(),
    event,
    by: whoRuns(),
    via: 'cli',
    registry: resolve(config.registry),
    ...details,
  };
  try {
    await createAuditLog(options).append(entry);
  } catch (err) {
    throw new GatewayError(
      'LL_AUDIT_WRITE_FAILED',
      `${config.registry} was changed (${event}), but the audit log ${options.file} could not record it: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export function registerAuditCommand(program: Command, env: Env): void {
  const verify = program
    .command('audit')
    .description('the audit log: exports and registry changes')
    .command('verify')
    .description(
      'check the audit log: MACs, entry numbers and its end against the head; exit 1 if an entry was changed, inserted, deleted or cut off',
    )
    .option('--file <file>', 'the audit log (default: DATA_DIR/audit.ndjson)');
  // The gateway's registry (the head is beside it), secrets file (the key) and data folder (the log).
  addRegistryEditOptions(verify).action(async (opts: CommonFlags & { file?: string }) => {
    const { file: _f, ...flags } = opts;
    const options = auditLogOptions(configFromFlags(flags, env));
    const file = opts.file ?? options.file;
    // A log written before the audit key existed verifies without it; a sealed one needs it.
    let missing: Error | undefined;
    const key = await options.key().catch((err: Error) => {
      missing = err;
      return undefined;
    });
    const r = await verifyAuditLog(file, { headFile: options.headFile, ...(key ? { key } : {}) }).catch(
      (err: Error) => {
        if (err instanceof GatewayError) throw err;
        throw new GatewayError('LL_INPUT_INVALID', `cannot read ${file}: ${err.message}`);
      },
    );
    for (const note of r.notes) process.stderr.write(`${file}: note: ${note}\n`);
    if (r.needsKey)
      throw new GatewayError(
        'LL_AUDIT_KEY_MISSING',
        `${file}: entries from line ${r.sealedFrom} on are sealed with the audit key, which is missing: ${missing?.message}`,
      );
    if (r.brokenAt) {
      process.stdout.write(`${file}:${r.brokenAt}: ${r.reason}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${file}: ${r.entries} entries, chain intact (${describeChain(r)})\n`);
  });
}

function describeChain(r: { entries: number; legacy: number; sealedFrom?: number }): string {
  if (r.entries === 0) return 'empty';
  if (r.sealedFrom === undefined) return `legacy SHA-256 chain, not sealed with the audit key`;
  const sealed = `sealed with the audit key from line ${r.sealedFrom}, head matches`;
  return r.legacy > 0 ? `legacy SHA-256 chain: ${r.legacy} entries; ${sealed}` : sealed;
}
