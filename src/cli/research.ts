// `livinglab projects ...` and `livinglab tokens ...`: research access as recorded in the
// registry, each change also recorded in the audit log (cli/audit.ts). Project secrets are never
// printed; tokens are printed once.
import type { Command } from 'commander';
import { parseDuration } from '../config/duration.js';
import { dayOf, resolveTimeZone } from '../config/time-zone.js';
import { GatewayError } from '../errors.js';
import { withRegistryLock } from '../registry/edit-lock.js';
import { readRegistryFile, writeRegistryFile } from '../registry/file.js';
import { addProject, issueToken, parseToken, revokeToken, setConsent } from '../registry/research.js';
import { issueStaffToken } from '../registry/staff-tokens.js';
import type { RegistryData } from '../registry/types.js';
import { loadSchemas } from '../schemas/load.js';
import type { SchemaSet } from '../schemas/types.js';
import { recordRegistryChange, registerAuditCommand } from './audit.js';
import { printTable } from './io.js';
import { addRegistryEditOptions as addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

type Env = Record<string, string | undefined>;
const list = (v: string | undefined) =>
  v
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];

/** Read, change, write, under the registry's edit lock (a concurrent edit is never lost). */
async function editRegistry(flags: CommonFlags, env: Env, change: (data: RegistryData) => RegistryData) {
  const config = configFromFlags(flags, env);
  await withRegistryLock(config.registry, async () => {
    await writeRegistryFile(
      config.registry,
      change(await readRegistryFile(config.registry, config.secretsFile)),
      config.secretsFile,
    );
  });
  return config;
}

export function registerResearchCommands(program: Command, env: Env): void {
  const projects = program
    .command('projects')
    .description('research projects: period, device types, released fields, consents');
  registerProjectAddCommand(projects, env);
  registerConsentCommand(projects, env);
  registerTokenCommands(program, env);
  registerAuditCommand(program, env);
}

/** A project may release only known device types and fields of those types. */
function checkReleased(schemas: SchemaSet, types: string[], fields: string[]): void {
  for (const t of types)
    if (!schemas.latest(t)) throw new GatewayError('LL_SCHEMA_UNKNOWN', `no device type "${t}"`);
  const known = new Set(
    types.flatMap((t) =>
      schemas
        .all()
        .filter((s) => s.type === t)
        .flatMap((s) => s.timeseries.fields.map((f) => f.name)),
    ),
  );
  for (const f of fields)
    if (!known.has(f))
      throw new GatewayError('LL_INPUT_INVALID', `field "${f}" is not a field of ${types.join(', ')}`);
}

function registerProjectAddCommand(projects: Command, env: Env): void {
  addRegistryOption(
    projects
      .command('add <id>')
      .description('add a project (its pseudonymisation secret is generated and never shown)')
      .requiredOption('--from <date>', "first day of the period (YYYY-MM-DD, the lab's local date)")
      .requiredOption('--to <date>', 'last day of the period (YYYY-MM-DD, included)')
      .requiredOption('--types <list>', 'device types released, comma-separated')
      .option('--fields <list>', 'fields released, comma-separated (default: all fields of those types)')
      .option('--schemas-dir <dir>', 'device schema folder'),
  ).action(
    async (id: string, opts: CommonFlags & { from: string; to: string; types: string; fields?: string }) => {
      const config = configFromFlags(opts, env);
      const types = list(opts.types);
      const fields = list(opts.fields);
      checkReleased(loadSchemas(config.schemasDir), types, fields);
      await editRegistry(opts, env, (data) =>
        addProject(data, { id, from: opts.from, to: opts.to, types, fields }),
      );
      await recordRegistryChange(config, 'project-added', {
        project: id,
        from: opts.from,
        to: opts.to,
        types,
        fields,
      });
      process.stderr.write(`project ${id} added (${opts.from} – ${opts.to}; ${types.join(', ')})\n`);
    },
  );
}

function registerConsentCommand(projects: Command, env: Env): void {
  addRegistryOption(
    projects
      .command('consent <id>')
      .description("record a subject's consent to a project, or its withdrawal")
      .requiredOption('--subject <code>', 'participant code')
      .option('--withdraw', 'the subject withdraws: removed from every later export')
      .option('--date <date>', "when (default: today, the lab's date in its time zone)"),
  ).action(async (id: string, opts: CommonFlags & { subject: string; withdraw?: boolean; date?: string }) => {
    // Today is the lab's date: just after its midnight, the UTC date is still yesterday's.
    const on = opts.date ?? dayOf(Date.now(), resolveTimeZone(configFromFlags(opts, env).timezone));
    const config = await editRegistry(opts, env, (data) =>
      setConsent(data, id, opts.subject, { withdraw: Boolean(opts.withdraw), on }),
    );
    await recordRegistryChange(config, opts.withdraw ? 'consent-withdrawn' : 'consent-given', {
      project: id,
      subject: opts.subject,
      on,
    });
    process.stderr.write(`${opts.subject}: consent to ${id} ${opts.withdraw ? 'withdrawn' : 'recorded'}\n`);
  });
}

type IssueFlags = CommonFlags & {
  staff?: boolean;
  name?: string;
  project?: string;
  researcher?: string;
  expires: string;
};

/** Issues a researcher token, or with --staff a staff token; returns the clear token and who holds it. */
function issueFromFlags(data: RegistryData, opts: IssueFlags, expires: Date) {
  if (opts.staff) {
    if (opts.project || opts.researcher)
      throw new GatewayError(
        'LL_INPUT_INVALID',
        'a staff token reads no project: give --name, not --project or --researcher',
      );
    if (!opts.name)
      throw new GatewayError('LL_INPUT_INVALID', '--staff needs --name (who or what holds the token)');
    return { ...issueStaffToken(data, { name: opts.name, expires }), what: `staff token for ${opts.name}` };
  }
  if (!opts.project || !opts.researcher)
    throw new GatewayError(
      'LL_INPUT_INVALID',
      'give --project and --researcher (or --staff --name NAME for a staff token)',
    );
  const r = issueToken(data, { project: opts.project, researcher: opts.researcher, expires });
  return { ...r, what: `token for ${opts.researcher} on project ${opts.project}` };
}

function registerTokenCommands(program: Command, env: Env): void {
  const tokens = program
    .command('tokens')
    .description('researcher API tokens (one project each) and staff API tokens (status views)');
  addRegistryOption(
    tokens
      .command('issue')
      .description('issue a token and print it once (only its hash is stored)')
      .option('--project <id>', 'project the token reads (researcher token)')
      .option('--researcher <name>', 'who gets it (goes into the audit log)')
      .option('--staff', 'a staff token: /api/v1/status and `livinglab status`, no research data')
      .option('--name <name>', 'who or what holds the staff token')
      .option('--expires <duration>', 'validity, e.g. 90d', '90d'),
  ).action(async (opts: IssueFlags) => {
    const ms = parseDuration(opts.expires);
    if (!ms)
      throw new GatewayError('LL_INPUT_INVALID', `--expires "${opts.expires}" is not a duration like 90d`);
    let issued = { token: '', what: '' };
    const expires = new Date(Date.now() + ms);
    const config = await editRegistry(opts, env, (data) => {
      const r = issueFromFlags(data, opts, expires);
      issued = r;
      return r.data;
    });
    await recordRegistryChange(config, 'token-issued', {
      token: parseToken(issued.token)?.id ?? '?',
      ...(opts.staff
        ? { kind: 'staff', name: opts.name }
        : { project: opts.project, researcher: opts.researcher }),
      expires: expires.toISOString(),
    });
    process.stderr.write(`${issued.what} (shown only now):\n`);
    process.stdout.write(`${issued.token}\n`);
  });
  addRegistryOption(
    tokens.command('list').description('list tokens (ids, holders, expiry; never secrets)'),
  ).action(async (opts: CommonFlags) => {
    const config = configFromFlags(opts, env);
    const data = await readRegistryFile(config.registry, config.secretsFile);
    const now = Date.now();
    const state = (t: { revoked: boolean; expires: string }) =>
      t.revoked ? 'revoked' : Date.parse(t.expires) <= now ? 'expired' : 'active';
    printTable([
      ['ID', 'KIND', 'HOLDER', 'PROJECT', 'EXPIRES', 'STATE'],
      ...data.staffTokens.map((t) => [t.id, 'staff', t.name, '-', t.expires, state(t)]),
      ...data.tokens.map((t) => [t.id, 'research', t.researcher, t.project, t.expires, state(t)]),
    ]);
  });
  addRegistryOption(tokens.command('revoke <token-or-id>').description('revoke a token')).action(
    async (id: string, opts: CommonFlags) => {
      let revoked: { id: string; project: string; researcher: string } | undefined;
      const config = await editRegistry(opts, env, (data) => {
        const next = revokeToken(data, id);
        revoked = next.tokens.find((t) => t.revoked && !data.tokens.find((o) => o.id === t.id)?.revoked);
        return next;
      });
      await recordRegistryChange(config, 'token-revoked', {
        token: revoked?.id ?? id.replace(/^ll_([a-z0-9]+)_.*$/, '$1'),
        ...(revoked ? { project: revoked.project, researcher: revoked.researcher } : {}),
      });
      process.stderr.write('token revoked\n');
    },
  );
}
