// `livinglab export`: the research API from the command line, to a file or stdout, with a running
// row count on a terminal. The gateway applies consent, pseudonyms and the audit log (via "cli").
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';

interface ExportFlags {
  project: string;
  token?: string;
  type: string;
  fields?: string;
  from?: string;
  to?: string;
  every?: string;
  fn?: string;
  format: string;
  out?: string;
  url: string;
}

export function registerExportCommand(program: Command, env: Record<string, string | undefined>): void {
  program
    .command('export')
    .description("export a project's readings (pseudonymised, consent-bound) from a running gateway")
    .requiredOption('--project <id>', 'project')
    .option('--token <token>', 'researcher token (better: LIVINGLAB_TOKEN in the environment)')
    .requiredOption('--type <type>', 'device type')
    .option('--fields <list>', 'fields, comma-separated (default: all released)')
    .option('--from <time>', 'RFC 3339 start (default: project start)')
    .option('--to <time>', 'RFC 3339 end (default: project end)')
    .option('--every <window>', 'aggregation window, e.g. 1h (with --fn)')
    .option('--fn <fn>', 'mean, min, max, count or last (with --every)')
    .option('--format <format>', 'csv, ndjson or json', 'csv')
    .option('--out <file>', 'write here instead of stdout')
    .option('--url <url>', "the gateway's HTTP address", 'http://127.0.0.1:8080')
    .action(async (opts: ExportFlags) => {
      const token = opts.token ?? env.LIVINGLAB_TOKEN;
      if (!token) throw new GatewayError('LL_INPUT_INVALID', 'give --token or set LIVINGLAB_TOKEN');
      const url = new URL(`/api/v1/projects/${encodeURIComponent(opts.project)}/readings`, opts.url);
      for (const key of ['type', 'fields', 'from', 'to', 'every', 'fn', 'format'] as const) {
        const v = opts[key];
        if (v !== undefined) url.searchParams.set(key, v);
      }
      let res: Response;
      try {
        res = await fetch(url, {
          headers: { authorization: `Bearer ${token}`, 'x-livinglab-client': 'cli' },
        });
      } catch (err) {
        throw new GatewayError(
          'LL_INPUT_INVALID',
          `cannot reach the gateway at ${opts.url}: ${(err as Error).message} (--url)`,
        );
      }
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => ({}))) as { error?: string };
        throw new GatewayError(
          'LL_INPUT_INVALID',
          `export refused (HTTP ${res.status}): ${body.error ?? res.statusText}`,
        );
      }
      const out = opts.out ? createWriteStream(opts.out, { mode: 0o600 }) : process.stdout;
      const tty = process.stderr.isTTY;
      let lines = 0;
      let last = 0;
      const counter = new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
          if (tty && Date.now() - last > 200) {
            last = Date.now();
            process.stderr.write(`\rexporting… ${lines.toLocaleString('en')} lines`);
          }
          if (out.write(chunk)) cb();
          else out.once('drain', () => cb());
        },
        final(cb) {
          if (out === process.stdout) cb();
          else out.end(cb);
        },
      });
      await pipeline(res.body as unknown as NodeJS.ReadableStream, counter);
      process.stderr.write(
        `${tty ? '\r' : ''}exported ${lines.toLocaleString('en')} lines${opts.out ? ` to ${opts.out}` : ''}\n`,
      );
    });
}
