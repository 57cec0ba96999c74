// `livinglab devices ...` and `livinglab accounts ...`: edit the registry file, and record each
// change in the audit log after the write (cli/audit.ts). Clear secrets are printed once
// (generated) or read from standard input, and only their hashes are written.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import { subjectAt } from '../registry/assignments.js';
import { parseCertificateRule } from '../registry/certificate-rule.js';
import {
  addAccount,
  addDevice,
  applyImportedCredentials,
  assignDevice,
  removeDevice,
  setDeviceCertificate,
  setDeviceEnabled,
  setDevicePassword,
  setDeviceProvenance,
} from '../registry/edit.js';
import { withRegistryLock } from '../registry/edit-lock.js';
import { readRegistryFile, writeRegistryFile } from '../registry/file.js';
import {
  GENERATED_SECRET_ITERATIONS,
  generateSecret,
  HUMAN_SECRET_ITERATIONS,
  hashSecretSync,
  parseMosquittoPasswordFile,
} from '../registry/passwords.js';
import { parseProvenance, provenanceOf } from '../registry/provenance.js';
import { ACCOUNT_ROLES, type CertificateRule, EMPTY_REGISTRY, type RegistryData } from '../registry/types.js';
import { loadSchemas } from '../schemas/load.js';
import type { SchemaSet } from '../schemas/types.js';
import { recordRegistryChange } from './audit.js';
import { printTable, readStdinSecret } from './io.js';
import { addRegistryEditOptions, addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

type Env = Record<string, string | undefined>;

async function readOrEmpty(file: string, secretsFile: string): Promise<RegistryData> {
  try {
    return await readRegistryFile(file, secretsFile);
  } catch (err) {
    if (err instanceof GatewayError && err.code === 'LL_REGISTRY_NOT_FOUND') return EMPTY_REGISTRY;
    throw err;
  }
}

async function newSecret(
  fromStdin: boolean | undefined,
  what: string,
): Promise<{ secret: string; hash: string; print: boolean }> {
  if (fromStdin) {
    const secret = await readStdinSecret(what);
    return { secret, hash: hashSecretSync(secret, HUMAN_SECRET_ITERATIONS), print: false };
  }
  const secret = generateSecret();
  return { secret, hash: hashSecretSync(secret, GENERATED_SECRET_ITERATIONS), print: true };
}

type Change = (data: RegistryData, file: string) => Promise<RegistryData> | RegistryData;

/**
 * Reads the registry file (none yet: empty), applies `change` and writes it back atomically, all
 * under the registry's edit lock, so an edit running beside this one is never lost.
 */
async function editRegistry(flags: CommonFlags, env: Env, change: Change) {
  const config = configFromFlags(flags, env);
  await withRegistryLock(config.registry, async () => {
    const data = await readOrEmpty(config.registry, config.secretsFile);
    await writeRegistryFile(config.registry, await change(data, config.registry), config.secretsFile);
  });
  return config;
}

export function registerDeviceCommands(program: Command, env: Env): void {
  const devices = program.command('devices').description('register and manage devices in the registry file');
  registerAddCommand(devices, env);
  registerListCommand(devices, env);
  registerEnableCommands(devices, env);
  registerAssignCommand(devices, env);
  addRegistryEditOptions(
    devices.command('remove <id>').description('remove a device from the registry'),
  ).action(async (id: string, opts: CommonFlags) => {
    const config = await editRegistry(opts, env, (data) => removeDevice(data, id));
    await recordRegistryChange(config, 'device-removed', { device: id });
    process.stderr.write(`device ${id} removed from ${config.registry}\n`);
  });
  registerPasswdCommand(devices, env);
  registerCertificateCommand(devices, env);
  registerProvenanceCommand(devices, env);
  registerImportCommand(devices, env);
  registerAccountCommands(program, env);
}

/** The schema version a new device speaks: the one asked for, else the newest of its type. */
function schemaVersionFor(schemas: SchemaSet, type: string, asked: string | undefined): number {
  const version = asked ? Number(asked) : schemas.latest(type)?.version;
  if (version === undefined || !schemas.get(type, version)) {
    const known = [...new Set(schemas.all().map((s) => s.type))].join(', ');
    throw new GatewayError(
      'LL_SCHEMA_UNKNOWN',
      `no schema for device type "${type}"${asked ? ` version ${asked}` : ''}; known types: ${known}`,
    );
  }
  return version;
}

function registerAddCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('add')
      .description('register a device and print its generated MQTT password once')
      .requiredOption('--id <id>', 'device id, also its MQTT username and client id (a-z, 0-9, -)')
      .requiredOption('--type <type>', 'device type: a folder of device-schemas/')
      .requiredOption('--site <site>', 'site (home, care home or lab floor) the device is at')
      .requiredOption('--vendor <vendor>', 'vendor name')
      .option(
        '--subject <code>',
        'participant code of the resident the device is assigned to (from the start; move it with `devices assign`)',
      )
      .option('--interval <duration>', 'expected reporting interval, e.g. 60s')
      .option('--provenance <real|simulated>', PROVENANCE_HELP, 'real')
      .option('--schema-version <n>', 'schema version the device speaks (default: the newest)')
      .option('--schemas-dir <dir>', 'device schema folder (default: the bundled device-schemas/)')
      .option('--password-stdin', 'read the password from standard input instead of generating one')
      .option('--certificate <rule>', CERTIFICATE_HELP),
  ).action(async (opts) => {
    const config = configFromFlags(opts, env);
    const certificate = opts.certificate ? await certificateRuleFrom(opts.certificate) : undefined;
    const provenance = parseProvenance(opts.provenance);
    const version = schemaVersionFor(loadSchemas(config.schemasDir), opts.type, opts.schemaVersion);
    const { secret, hash, print } = await newSecret(opts.passwordStdin, 'the device password');
    await editRegistry(opts, env, (data) =>
      addDevice(data, {
        id: opts.id,
        type: opts.type,
        schemaVersion: version,
        site: opts.site,
        vendor: opts.vendor,
        provenance,
        ...(opts.subject ? { subject: opts.subject } : {}),
        ...(opts.interval ? { interval: opts.interval } : {}),
        passwordHash: hash,
        ...(certificate ? { certificate } : {}),
      }),
    );
    await recordRegistryChange(config, 'device-added', {
      device: opts.id,
      type: opts.type,
      schemaVersion: version,
      site: opts.site,
      vendor: opts.vendor,
      provenance,
      ...(opts.subject ? { subject: opts.subject } : {}),
      ...(certificate
        ? { certificate: 'issuer' in certificate ? 'lab-ca' : certificate.fingerprint256 }
        : {}),
    });
    process.stderr.write(
      `${provenance} device ${opts.id} (${opts.type}@${version}) added to ${config.registry}\n`,
    );
    if (print) {
      process.stderr.write('MQTT password (shown only now; store it in the device):\n');
      process.stdout.write(`${secret}\n`);
    }
  });
}

function registerListCommand(devices: Command, env: Env): void {
  addRegistryOption(
    devices.command('list').description('list registered devices').option('--json', 'print JSON'),
  ).action(async (opts) => {
    const config = configFromFlags(opts, env);
    const data = await readRegistryFile(config.registry, config.secretsFile);
    if (opts.json) {
      const list = data.devices.map(({ passwordHash: _hash, ...d }) => d);
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    printTable([
      ['ID', 'TYPE', 'SITE', 'VENDOR', 'SUBJECT', 'INTERVAL', 'ENABLED', 'PROVENANCE'],
      ...data.devices.map((d) => [
        d.id,
        `${d.type}@${d.schemaVersion}`,
        d.site,
        d.vendor,
        subjectAt(d, Date.now()) ?? '-',
        d.interval ?? '-',
        d.enabled ? 'yes' : 'no',
        provenanceOf(d),
      ]),
    ]);
  });
}

function registerEnableCommands(devices: Command, env: Env): void {
  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    addRegistryEditOptions(
      devices
        .command(`${name} <id>`)
        .description(
          `${name} a device (a running gateway ${enabled ? 'accepts it again' : 'disconnects it'})`,
        ),
    ).action(async (id: string, opts: CommonFlags) => {
      const config = await editRegistry(opts, env, (data) => setDeviceEnabled(data, id, enabled));
      await recordRegistryChange(config, enabled ? 'device-enabled' : 'device-disabled', { device: id });
      process.stderr.write(`device ${id} ${name}d in ${config.registry}\n`);
    });
  }
}

function registerPasswdCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('passwd <id>')
      .description('give a device a new password (generated and printed once, or from standard input)')
      .option('--password-stdin', 'read the password from standard input'),
  ).action(async (id: string, opts: CommonFlags & { passwordStdin?: boolean }) => {
    const { secret, hash, print } = await newSecret(opts.passwordStdin, 'the device password');
    const config = await editRegistry(opts, env, (data) => setDevicePassword(data, id, hash));
    await recordRegistryChange(config, 'device-password-set', { device: id });
    process.stderr.write(`new password set for device ${id} in ${config.registry}\n`);
    if (print) process.stdout.write(`${secret}\n`);
  });
}

const CERTIFICATE_HELP =
  'client certificate that may log the device in without a password: "lab-ca" (any certificate from tls.ca whose CN or a SAN is the device id), a SHA-256 fingerprint (AB:CD:...), or a PEM certificate file to pin';

/** A rule as typed: `lab-ca`, a fingerprint, `none` (undefined), or a certificate file to pin. */
async function certificateRuleFrom(text: string): Promise<CertificateRule | undefined> {
  if (text === 'none') return undefined;
  const rule = parseCertificateRule(text);
  if (rule) return rule;
  const pem = await readFile(text, 'utf8').catch(() => {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `--certificate "${text}" is not "lab-ca", "none", a SHA-256 fingerprint (AB:CD:...) or a readable certificate file`,
    );
  });
  try {
    return { fingerprint256: new X509Certificate(pem).fingerprint256 };
  } catch (err) {
    throw new GatewayError('LL_INPUT_INVALID', `${text} is not a PEM certificate: ${(err as Error).message}`);
  }
}

function registerCertificateCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('certificate <id> <rule>')
      .description(
        `set which client certificate may log a device in without a password (a running gateway disconnects it if the rule changes); <rule>: "none" to allow the password only, or ${CERTIFICATE_HELP.replace(/^client certificate[^:]*: /, '')}`,
      ),
  ).action(async (id: string, text: string, opts: CommonFlags) => {
    const rule = await certificateRuleFrom(text);
    const config = await editRegistry(opts, env, (data) => setDeviceCertificate(data, id, rule));
    const what = rule ? ('issuer' in rule ? 'lab-ca' : rule.fingerprint256) : 'none';
    await recordRegistryChange(config, 'device-certificate-set', { device: id, certificate: what });
    process.stderr.write(`certificate rule of device ${id} set to ${what} in ${config.registry}\n`);
  });
}

const PROVENANCE_HELP =
  'real: measures a resident or the lab (exported to researchers); simulated: a stand-in whose readings exports leave out unless asked (include=simulated)';

function registerProvenanceCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('provenance <id> <real|simulated>')
      .description(
        `mark a device real or simulated (a running gateway tags its next readings so); ${PROVENANCE_HELP}`,
      ),
  ).action(async (id: string, text: string, opts: CommonFlags) => {
    const provenance = parseProvenance(text);
    const config = await editRegistry(opts, env, (data) => setDeviceProvenance(data, id, provenance));
    await recordRegistryChange(config, 'device-provenance-set', { device: id, provenance });
    process.stderr.write(`device ${id} marked ${provenance} in ${config.registry}\n`);
  });
}

type ImportFlags = CommonFlags & { type?: string; site?: string; vendor?: string };
type NewImportedDevices = Parameters<typeof applyImportedCredentials>[2];

/** With --type, --site and --vendor, unknown usernames become devices of that type; else none. */
function importedDeviceTemplate(opts: ImportFlags, env: Env): NewImportedDevices {
  if (!opts.type && !opts.site && !opts.vendor) return undefined;
  if (!opts.type || !opts.site || !opts.vendor) {
    throw new GatewayError('LL_INPUT_INVALID', 'to create devices, give all of --type, --site and --vendor');
  }
  const config = configFromFlags(opts, env);
  const schema = loadSchemas(config.schemasDir).latest(opts.type);
  if (!schema) throw new GatewayError('LL_SCHEMA_UNKNOWN', `no schema for device type "${opts.type}"`);
  return { type: opts.type, schemaVersion: schema.version, site: opts.site, vendor: opts.vendor };
}

function registerImportCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('import-mosquitto <file>')
      .description('import PBKDF2-SHA512 ($7$) hashes from a mosquitto_passwd file')
      .option('--type <type>', 'create unknown usernames as devices of this type (with --site and --vendor)')
      .option('--site <site>', 'site for created devices')
      .option('--vendor <vendor>', 'vendor for created devices'),
  ).action(async (file: string, opts: ImportFlags) => {
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new GatewayError('LL_INPUT_INVALID', `cannot read ${file}: ${err.message}`);
    });
    const parsed = parseMosquittoPasswordFile(text, file);
    const newDevices = importedDeviceTemplate(opts, env);
    let summary = {
      updated: [] as string[],
      added: [] as string[],
      skipped: [] as { username: string; reason: string }[],
    };
    const config = await editRegistry(opts, env, (data) => {
      const result = applyImportedCredentials(data, parsed.credentials, newDevices);
      summary = result;
      return result.data;
    });
    for (const device of summary.added)
      await recordRegistryChange(config, 'device-added', { device, ...newDevices, importedFrom: file });
    for (const device of summary.updated)
      await recordRegistryChange(config, 'device-password-set', { device, importedFrom: file });
    for (const r of parsed.refused)
      process.stderr.write(`${file}:${r.line}: ${r.username || '?'}: refused: ${r.reason}\n`);
    for (const s of summary.skipped) process.stderr.write(`${s.username}: skipped: ${s.reason}\n`);
    process.stderr.write(
      `${config.registry}: ${summary.updated.length} password(s) updated, ${summary.added.length} device(s) added, ` +
        `${parsed.refused.length + summary.skipped.length} line(s) not imported\n`,
    );
    if (parsed.refused.length + summary.skipped.length > 0) process.exitCode = 1;
  });
}

function registerAccountCommands(program: Command, env: Env): void {
  const accounts = program
    .command('accounts')
    .description(
      "manage staff accounts (read-only MQTT access to lab/#) and gateways' own accounts on an external broker",
    );
  addRegistryEditOptions(
    accounts
      .command('add')
      .description('add an account; its password is generated and printed once unless --password-stdin')
      .requiredOption('--id <id>', 'account id, also its MQTT username')
      .option(
        '--role <role>',
        "staff (reads lab/#) or gateway (a gateway's account on an external broker: the shared subscription, rejected and status topics)",
        'staff',
      )
      .option('--password-stdin', 'read the password from standard input'),
  ).action(async (opts: CommonFlags & { id: string; role: string; passwordStdin?: boolean }) => {
    const role = ACCOUNT_ROLES.find((r) => r === opts.role);
    if (!role)
      throw new GatewayError(
        'LL_INPUT_INVALID',
        `unknown role "${opts.role}"; roles: ${ACCOUNT_ROLES.join(', ')}`,
      );
    const { secret, hash, print } = await newSecret(opts.passwordStdin, 'the account password');
    const config = await editRegistry(opts, env, (data) =>
      addAccount(data, { id: opts.id, role, passwordHash: hash }),
    );
    await recordRegistryChange(config, 'account-added', { account: opts.id, role: opts.role });
    process.stderr.write(`account ${opts.id} (${opts.role}) added to ${config.registry}\n`);
    if (print) process.stdout.write(`${secret}\n`);
  });
}

// A move is recorded, never rewritten: readings are tagged by their own time with the subject of
// the assignment covering it, so a buffer flushed after the move stays with the previous resident.
function registerAssignCommand(devices: Command, env: Env): void {
  addRegistryEditOptions(
    devices
      .command('assign <id>')
      .description(
        'move a device to a resident (or to no one) from a time: closes the current assignment and opens the next',
      )
      .option('--subject <code>', 'participant code of the resident who has the device from then on')
      .option('--none', 'the device belongs to no one from then on (returned to the lab, in storage)')
      .option(
        '--from <time>',
        'when the move happened, RFC 3339 such as 2026-03-01T12:00:00Z (default: now)',
      ),
  ).action(async (id: string, opts: CommonFlags & { subject?: string; none?: boolean; from?: string }) => {
    if (Boolean(opts.subject) === Boolean(opts.none))
      throw new GatewayError('LL_INPUT_INVALID', 'give either --subject CODE or --none');
    const from = opts.from ?? new Date().toISOString();
    const config = await editRegistry(opts, env, (data) => assignDevice(data, id, opts.subject, from));
    await recordRegistryChange(config, 'device-assigned', {
      device: id,
      subject: opts.subject ?? null,
      from: new Date(Date.parse(from)).toISOString(),
    });
    process.stderr.write(
      `device ${id} assigned to ${opts.subject ?? 'no one'} from ${new Date(Date.parse(from)).toISOString()} in ${config.registry}\n`,
    );
  });
}
