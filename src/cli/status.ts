// `livinglab status`: asks a running gateway how it is doing and prints it as tables. The view
// names devices and when they were last seen, so it sends a staff token (LIVINGLAB_TOKEN or
// --token-file) and never prints it.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import type { GatewayStatus } from '../http/status.js';
import { printTable } from './io.js';

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

const HOW =
  'issue a staff token with `livinglab tokens issue --staff --name NAME` and pass it in LIVINGLAB_TOKEN or --token-file';

async function readToken(tokenFile: string | undefined, env: Record<string, string | undefined>) {
  if (!tokenFile) return env.LIVINGLAB_TOKEN?.trim() || undefined;
  try {
    return (await readFile(tokenFile, 'utf8')).trim() || undefined;
  } catch (err) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `cannot read --token-file ${tokenFile}: ${(err as Error).message}`,
    );
  }
}

/** The refusal as a technician can act on it; the gateway's own reason is quoted. */
async function refusal(res: Response, url: string, hasToken: boolean): Promise<GatewayError> {
  const said = await res
    .json()
    .then((b: unknown) => (b as { error?: string }).error ?? '')
    .catch(() => '');
  const why = said ? ` ("${said}")` : '';
  if (res.status === 401)
    return new GatewayError(
      'LL_ACCESS_DENIED',
      hasToken
        ? `the gateway at ${url} refused the token (401${why}): it is unknown, wrong, expired or revoked; ${HOW}`
        : `the gateway at ${url} needs a staff token for its status (401); ${HOW}`,
    );
  if (res.status === 403)
    return new GatewayError('LL_ACCESS_DENIED', `this token is not a staff token (403${why}); ${HOW}`);
  if (res.status === 429)
    return new GatewayError(
      'LL_ACCESS_DENIED',
      `too many bad tokens came from this address (429); try again in ${res.headers.get('retry-after') ?? 'a few'} s`,
    );
  return new GatewayError('LL_INPUT_INVALID', `the gateway at ${url} answered HTTP ${res.status}${why}`);
}

async function fetchStatus(url: string, token: string | undefined): Promise<GatewayStatus> {
  let res: Response;
  try {
    res = await fetch(new URL('/api/v1/status', url), {
      signal: AbortSignal.timeout(5000),
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });
  } catch (err) {
    throw new GatewayError(
      'LL_INPUT_INVALID',
      `cannot reach the gateway at ${url}: ${(err as Error).message} (--url)`,
    );
  }
  if (!res.ok) throw await refusal(res, url, token !== undefined);
  return (await res.json()) as GatewayStatus;
}

export function registerStatusCommand(program: Command, env: Record<string, string | undefined>): void {
  program
    .command('status')
    .description('show a running gateway: connected and silent devices, spool, last write, recent rejects')
    .option('--url <url>', "the gateway's HTTP address", 'http://127.0.0.1:8080')
    .option('--token-file <file>', 'file holding a staff token (default: LIVINGLAB_TOKEN)')
    .option('--json', 'print the raw JSON')
    .action(async (opts: { url: string; tokenFile?: string; json?: boolean }) => {
      const status = await fetchStatus(opts.url, await readToken(opts.tokenFile, env));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      const enabled = status.devices.filter((d) => d.enabled).length;
      printTable([
        [
          'devices connected',
          status.connectedDevices === null
            ? `unknown (an external broker holds the connections); ${enabled} enabled`
            : `${status.connectedDevices} of ${enabled} enabled`,
        ],
        ['devices silent', String(status.silentDevices)],
        ['devices real / simulated', provenanceCounts(status.devices)],
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
      const silent = status.devices.filter((d) => d.silent || (d.enabled && d.connected === false));
      if (silent.length > 0) {
        process.stdout.write('\n');
        printTable([
          ['DEVICE', 'TYPE', 'SITE', 'CONNECTED', 'SILENT', 'LAST SEEN'],
          ...silent.map((d) => [
            d.id,
            d.type,
            d.site,
            d.connected === null ? 'unknown' : d.connected ? 'yes' : 'no',
            d.silent ? 'yes' : 'no',
            d.lastSeen ?? 'never',
          ]),
        ]);
      }
    });
}

/** "3 real, 24 simulated"; a gateway older than provenance sends none, and every device is real. */
function provenanceCounts(devices: readonly { provenance?: string }[]): string {
  const simulated = devices.filter((d) => d.provenance === 'simulated').length;
  return `${devices.length - simulated} real, ${simulated} simulated`;
}
