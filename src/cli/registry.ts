// `livinglab registry migrate`: moves the secrets of an older lab.yaml (hashes, project keys) into
// its secrets file, as `serve` does on start; every value is carried over unchanged, so no pseudonym
// changes; and marks the devices a simulator registered before provenance existed as simulated
// (registry/provenance-migrate.ts). Safe to run again, and to run beside a running gateway (it
// reloads both files).
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import { markSimulatorDevices } from '../registry/provenance-migrate.js';
import { migrateRegistrySecrets } from '../registry/secrets-migrate.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

export function registerRegistryCommands(program: Command, env: Record<string, string | undefined>): void {
  const registry = program.command('registry').description('the registry file and its secrets file');
  addRegistryOption(
    registry
      .command('migrate')
      .description(
        'move secrets out of the registry file into its secrets file (no value changes); mark devices a simulator registered as simulated',
      ),
  ).action(async (opts: CommonFlags) => {
    const config = configFromFlags(opts, env);
    const result = await migrateRegistrySecrets(config.registry, config.secretsFile);
    process.stderr.write(
      result.moved > 0
        ? `moved ${result.moved} secret(s) from ${config.registry} to ${result.secretsFile}; ${config.registry} now holds no secret\n`
        : `${config.registry} holds no secret${result.created ? `; created ${result.secretsFile}` : ''}: nothing to move\n`,
    );
    const marked = await markSimulatorDevices(config.registry);
    const more = marked.simulated.length - 20;
    const named = `${marked.simulated.slice(0, 20).join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
    if (!marked.written)
      throw new GatewayError(
        'LL_REGISTRY_READ_ONLY',
        `${config.registry} cannot be written: devices ${named} were registered by a simulator but are not marked simulated; run this where the file is writable`,
      );
    if (marked.simulated.length > 0)
      process.stderr.write(
        `marked ${marked.simulated.length} device(s) a simulator registered as provenance: simulated: ${named}\n`,
      );
  });
}
