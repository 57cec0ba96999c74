// `livinglab status`: asks a running gateway how it is doing and prints it as tables.
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import type { GatewayStatus } from '../http/status.js';
import { printTable } from './io.js';

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show a running gateway: connected and silent devices, spool, last write, recent rejects')
    .option('--url <url>', "the gateway's HTTP address", 'http://127.0.0.1:8080')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { url: string; json?: boolean }) => {
      let status: GatewayStatus;
      try {
        const res = await fetch(new URL('/api/v1/status', opts.url), { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        status = (await res.json()) as GatewayStatus;
      } catch (err) {
        throw new GatewayError(
          'LL_INPUT_INVALID',
          `cannot reach the gateway at ${opts.url}: ${(err as Error).message} (--url)`,
        );
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      const enabled = status.devices.filter((d) => d.enabled).length;
      printTable([
        ['devices connected', `${status.connectedDevices} of ${enabled} enabled`],
        ['devices silent', String(status.silentDevices)],
        [
          'spool',
          `${mib(status.spool.bytes)} of ${mib(status.spool.limitBytes)}${status.spool.full ? ' — FULL, not acknowledging' : ''}`,
        ],
        [
          'oldest unwritten',
          `${status.spool.oldestUnwrittenSeconds} s (${status.spool.unwrittenRecords} messages)`,
        ],
        ['last write to InfluxDB', status.lastWriteAt ?? 'none yet'],
        ['rejects in the last hour', String(status.rejectsLastHour)],
      ]);
      const silent = status.devices.filter((d) => d.silent || (d.enabled && !d.connected));
      if (silent.length > 0) {
        process.stdout.write('\n');
        printTable([
          ['DEVICE', 'TYPE', 'SITE', 'CONNECTED', 'SILENT', 'LAST SEEN'],
          ...silent.map((d) => [
            d.id,
            d.type,
            d.site,
            d.connected ? 'yes' : 'no',
            d.silent ? 'yes' : 'no',
            d.lastSeen ?? 'never',
          ]),
        ]);
      }
    });
}
