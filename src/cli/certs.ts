// `livinglab certs init|issue`: a lab CA with a server certificate, and device certificates signed
// by it (src/tls/certs.ts). Every file is written 0600 and never over an existing one: overwriting
// a CA key would orphan every device certificate it signed.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import { isSegment, SEGMENT_RULE } from '../registry/ids.js';
import type { CertAndKey } from '../tls/certs.js';

// Loaded when a certs command runs: the X.509 library costs every other command's start-up.
const x509 = () => import('../tls/certs.js');

const DAY_MS = 86_400_000;

function validityFrom(days: string | undefined): { notAfter?: Date } {
  if (days === undefined) return {};
  const n = Number(days);
  if (!Number.isInteger(n) || n < 1)
    throw new GatewayError('LL_INPUT_INVALID', `--days "${days}" must be a whole number of days`);
  return { notAfter: new Date(Date.now() + n * DAY_MS) };
}

/** Writes cert and key as NAME.crt and NAME.key, 0600, refusing to replace a file. */
async function savePair(dir: string, name: string, pair: CertAndKey): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: [string, string][] = [
    [join(dir, `${name}.crt`), pair.cert],
    [join(dir, `${name}.key`), pair.key],
  ];
  for (const [file, text] of files) {
    await writeFile(file, text, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'EEXIST' ? 'it exists already (move it away first)' : err.message;
      throw new GatewayError('LL_INPUT_INVALID', `cannot write ${file}: ${why}`, { cause: err });
    });
  }
  return files.map(([file]) => file);
}

async function readCa(dir: string): Promise<CertAndKey> {
  const read = (file: string) =>
    readFile(join(dir, file), 'utf8').catch((err: Error) => {
      throw new GatewayError(
        'LL_INPUT_INVALID',
        `cannot read ${join(dir, file)}: ${err.message} (--ca-dir is the --out of \`livinglab certs init\`)`,
      );
    });
  return { cert: await read('ca.crt'), key: await read('ca.key') };
}

function registerInit(certs: Command): void {
  certs
    .command('init')
    .description(
      'create a lab CA (ca.crt, ca.key) and a server certificate for the given host names and addresses (server.crt, server.key); files 0600, never overwritten',
    )
    .requiredOption('--out <dir>', 'folder to write the files to (created 0700 if missing)')
    .requiredOption(
      '--host <name...>',
      'host names and IP addresses devices use to reach the gateway (the first is also the CN)',
    )
    .option('--days <n>', 'validity of the server certificate in days (default: 730)')
    .option('--ca-name <name>', 'common name of the CA', 'Living Lab CA')
    .action(async (opts: { out: string; host: string[]; days?: string; caName: string }) => {
      const validity = validityFrom(opts.days);
      const { createCa, issueServerCert } = await x509();
      const ca = await createCa({ name: opts.caName });
      const server = await issueServerCert(ca, opts.host, validity);
      const written = [
        ...(await savePair(opts.out, 'ca', ca)),
        ...(await savePair(opts.out, 'server', server)),
      ];
      process.stderr.write(`wrote ${written.join(', ')}\n`);
      process.stderr.write(
        `serve with: --tls-cert ${join(opts.out, 'server.crt')} --tls-key ${join(opts.out, 'server.key')} --tls-ca ${join(opts.out, 'ca.crt')}\n` +
          `keep ${join(opts.out, 'ca.key')} off the gateway if you can: it is needed only to issue certificates\n`,
      );
    });
}

function registerIssue(certs: Command): void {
  certs
    .command('issue')
    .description('issue a device certificate (CN = device id) signed by the lab CA; files 0600')
    .requiredOption('--device <id>', 'device id (the certificate logs in this device only)')
    .requiredOption('--ca-dir <dir>', 'folder with ca.crt and ca.key (the --out of `certs init`)')
    .requiredOption('--out <dir>', 'folder to write ID.crt and ID.key to')
    .option('--days <n>', 'validity in days (default: 730)')
    .action(async (opts: { device: string; caDir: string; out: string; days?: string }) => {
      if (!isSegment(opts.device))
        throw new GatewayError('LL_INPUT_INVALID', `device id "${opts.device}" must be ${SEGMENT_RULE}`);
      const validity = validityFrom(opts.days);
      const { issueDeviceCert } = await x509();
      const pair = await issueDeviceCert(await readCa(opts.caDir), opts.device, validity);
      const written = await savePair(opts.out, opts.device, pair);
      process.stderr.write(
        `wrote ${written.join(', ')}\n` +
          `let it log in without a password: livinglab devices certificate ${opts.device} lab-ca\n`,
      );
    });
}

export function registerCertsCommands(program: Command): void {
  const certs = program
    .command('certs')
    .description('create the lab CA, the server certificate and device certificates for MQTT over TLS');
  registerInit(certs);
  registerIssue(certs);
}
