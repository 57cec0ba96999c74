// The `livinglab` command. Errors a technician can fix (GatewayError) print their message and exit
// with status 2; anything else is a bug and prints its stack.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { isGatewayError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { registerBackupCommands } from './backup.js';
import { registerBrokerCommands } from './broker.js';
import { registerCertsCommands } from './certs.js';
import { registerDeviceCommands } from './devices.js';
import { registerExportCommand } from './export.js';
import { registerRecordingCommands } from './recording.js';
import { registerRegistryCommands } from './registry.js';
import { registerReportCommand } from './report.js';
import { registerResearchCommands } from './research.js';
import { registerSchemaCommands } from './schemas.js';
import { registerServeCommand } from './serve.js';
import { registerSimulateCommand } from './simulate.js';
import { registerStatusCommand } from './status.js';

const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
  version: string;
};

export function buildProgram(env: Record<string, string | undefined>): Command {
  const program = new Command('livinglab')
    .description('Living Lab Gateway: MQTT broker and ingestion for welfare-technology living labs')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();
  registerServeCommand(program, env);
  registerDeviceCommands(program, env);
  registerSchemaCommands(program);
  registerSimulateCommand(program, env);
  registerRecordingCommands(program, env);
  registerStatusCommand(program, env);
  registerReportCommand(program, env);
  registerResearchCommands(program, env);
  registerExportCommand(program, env);
  registerRegistryCommands(program, env);
  registerCertsCommands(program);
  registerBackupCommands(program, env);
  registerBrokerCommands(program, env);
  return program;
}

// `livinglab simulate --dry-run | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await buildProgram(process.env).parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (isGatewayError(err)) {
    process.stderr.write(`livinglab: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`livinglab: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
