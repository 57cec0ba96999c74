// `livinglab record` and `livinglab replay`.
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { credentialsFileFor, readCredentials } from '../../simulators/provision.js';
import { recordMessages, replayRecording } from '../../simulators/recording.js';
import { parseDuration } from '../config/duration.js';
import { GatewayError } from '../errors.js';
import { ALL_TOPICS } from '../registry/topics.js';
import { readStdinSecret } from './io.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

export function registerRecordingCommands(program: Command, env: Record<string, string | undefined>): void {
  program
    .command('record')
    .description('record device messages (as a staff account) to NDJSON for `livinglab replay`')
    .requiredOption('--out <file>', 'NDJSON file to write')
    .requiredOption('--username <account>', 'staff account to subscribe as (password from standard input)')
    .option('--mqtt-url <url>', 'gateway MQTT address', 'mqtt://127.0.0.1:1883')
    .option('--filter <topic>', 'topic filter', ALL_TOPICS)
    .option('--duration <d>', 'stop after this long (default: until Ctrl-C)')
    .action(
      async (opts: { out: string; username: string; mqttUrl: string; filter: string; duration?: string }) => {
        const password = await readStdinSecret('the staff password');
        const out = createWriteStream(opts.out, { flags: 'w', mode: 0o600 });
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        process.once('SIGTERM', () => stop.abort());
        if (opts.duration) {
          const ms = parseDuration(opts.duration);
          if (ms === undefined)
            throw new GatewayError('LL_INPUT_INVALID', `--duration "${opts.duration}" is not a duration`);
          setTimeout(() => stop.abort(), ms).unref();
        }
        const n = await recordMessages({
          mqttUrl: opts.mqttUrl,
          username: opts.username,
          password,
          filter: opts.filter,
          out,
          signal: stop.signal,
          onSubscribed: () =>
            process.stderr.write(
              `recording ${opts.filter} from ${opts.mqttUrl} to ${opts.out}; Ctrl-C to stop\n`,
            ),
        });
        await new Promise<void>((r) => out.end(() => r()));
        process.stderr.write(`${n} message${n === 1 ? '' : 's'} recorded to ${opts.out}\n`);
      },
    );

  addRegistryOption(
    program
      .command('replay <file>')
      .description('republish a recording with its original timing scaled, as the simulated devices in it')
      .option('--speed <n>', 'how many times faster than recorded', '1')
      .option('--mqtt-url <url>', 'gateway MQTT address', 'mqtt://127.0.0.1:1883'),
  ).action(async (file: string, opts: CommonFlags & { speed: string; mqttUrl: string }) => {
    const speed = Number(opts.speed);
    if (!(speed > 0))
      throw new GatewayError('LL_INPUT_INVALID', `--speed must be a positive number, not "${opts.speed}"`);
    const config = configFromFlags(opts, env);
    const credentials = await readCredentials(credentialsFileFor(config.registry));
    const r = await replayRecording({ file, mqttUrl: opts.mqttUrl, credentials, speed });
    process.stderr.write(
      `${r.sent} messages replayed, ${r.acked} acknowledged, ${r.skipped} skipped (no simulator credentials for their device)\n`,
    );
    if (r.acked < r.sent) process.exitCode = 1;
  });
}
