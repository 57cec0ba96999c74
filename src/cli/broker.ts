// `livinglab broker mosquitto --out DIR`: writes Mosquitto 2.0's password_file and acl_file from
// the registry (registry/mosquitto-files.ts), once; `serve --mosquitto-sync DIR` keeps them in step.
// Entries Mosquitto cannot read are named on stderr, never silently dropped.
import type { Command } from 'commander';
import { readRegistryFile } from '../registry/file.js';
import {
  ACL_FILE,
  PASSWORD_FILE,
  renderMosquittoFiles,
  writeMosquittoFiles,
} from '../registry/mosquitto-files.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

export function registerBrokerCommands(program: Command, env: Record<string, string | undefined>): void {
  const broker = program
    .command('broker')
    .description('files for an external MQTT broker in front of the gateway');
  addRegistryOption(
    broker
      .command('mosquitto')
      .description(
        "write Mosquitto 2.0's password_file and acl_file from the registry (devices: own topics; staff: read-only)",
      )
      .requiredOption(
        '--out <dir>',
        'folder to write password_file and acl_file into (created when missing)',
      ),
  ).action(async (opts: CommonFlags & { out: string }) => {
    const config = configFromFlags(opts, env);
    const files = renderMosquittoFiles(await readRegistryFile(config.registry, config.secretsFile));
    await writeMosquittoFiles(opts.out, files);
    for (const { id, reason } of files.skipped)
      process.stderr.write(`livinglab: warning: ${id} left out of ${PASSWORD_FILE}: ${reason}\n`);
    const entries = files.passwordFile.split('\n').filter(Boolean).length;
    process.stderr.write(
      `wrote ${opts.out}/${PASSWORD_FILE} (${entries} entries) and ${opts.out}/${ACL_FILE}; ` +
        'Mosquitto needs password_file, acl_file and use_username_as_clientid true in its configuration\n',
    );
  });
}
