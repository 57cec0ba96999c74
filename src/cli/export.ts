// `livinglab export`: the research API from the command line, to a file or stdout, with a running
// row count on a terminal. The gateway applies consent, pseudonyms and the audit log (via "api",
// as for any HTTP client: the gateway cannot tell this command from another client).
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import { GatewayError } from '../errors.js';
import { FORMATS } from '../query/formats.js';

interface ExportFlags {
  project: string;
  token?: string;
  type: string;
  fields?: string;
  tags?: string;
  order?: string;
  precision?: string;
  includeSimulated?: boolean;
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
    .requiredOption('--type <types>', 'device types, comma-separated (several: stacked, one row per reading)')
    .option('--fields <list>', 'fields, comma-separated (default: all released)')
    .option('--tags <list>', "tag columns, comma-separated (default: all the schemas' tags)")
    .option('--from <time>', 'RFC 3339 start (default: project start)')
    .option('--to <time>', 'RFC 3339 end (default: project end)')
    .option('--every <window>', 'aggregation window, e.g. 1h (with --fn)')
    .option('--fn <fn>', 'mean, min, max, count or last (with --every)')
    .addOption(
      new Option('--order <order>', 'time (all subjects merged) or subject (one after the other)').choices([
        'time',
        'subject',
      ]),
    )
    .addOption(
      new Option('--precision <unit>', 'time resolution (default ns)').choices(['s', 'ms', 'us', 'ns']),
    )
    .option('--include-simulated', 'also readings of simulated devices (column provenance tells)')
    .addOption(
      new Option('--format <format>', 'csv, ndjson, json, arrow or fhir (FHIR R4 NDJSON)')
        .choices(Object.keys(FORMATS))
        .default('csv'),
    )
    .option('--out <file>', 'write here instead of stdout')
    .option('--url <url>', "the gateway's HTTP address", 'http://127.0.0.1:8080')
    .action(async (opts: ExportFlags) => {
      const token = opts.token ?? env.LIVINGLAB_TOKEN;
      if (!token) throw new GatewayError('LL_INPUT_INVALID', 'give --token or set LIVINGLAB_TOKEN');
      const url = new URL(`/api/v1/projects/${encodeURIComponent(opts.project)}/readings`, opts.url);
      for (const key of [
        'type',
        'fields',
        'tags',
        'from',
        'to',
        'every',
        'fn',
        'order',
        'precision',
        'format',
      ] as const) {
        const v = opts[key];
        if (v !== undefined) url.searchParams.set(key, v);
      }
      if (opts.includeSimulated) url.searchParams.set('include', 'simulated');
      let res: Response;
      try {
        res = await fetch(url, {
          headers: { authorization: `Bearer ${token}` },
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
      await writeExport(res, opts);
    });
}

/**
 * Copies the export to the file or stdout with a running count. A body that breaks off (the
 * connection dropped, or the gateway could not go on) is an error naming what was written: the
 * gateway's audit log has that export as failed or cut off.
 */
async function writeExport(res: Response, opts: ExportFlags): Promise<void> {
  const out = opts.out ? createWriteStream(opts.out, { mode: 0o600 }) : process.stdout;
  const tty = process.stderr.isTTY;
  // Rows, whatever the format: records in CSV, objects in JSON, record-batch lengths in Arrow.
  // Loaded here, so other commands do not load apache-arrow.
  const { createRowCounter } = await import('./export-rows.js');
  const counter = createRowCounter(opts.format);
  const rows = () => `${counter.rows.toLocaleString('en')} rows`;
  let last = 0;
  const copy = new Writable({
    write(chunk: Buffer, _enc, cb) {
      counter.push(chunk);
      if (tty && Date.now() - last > 200) {
        last = Date.now();
        process.stderr.write(`\rexporting… ${rows()}`);
      }
      if (out.write(chunk)) cb();
      else out.once('drain', () => cb());
    },
    final(cb) {
      if (out === process.stdout) cb();
      else out.end(cb);
    },
  });
  const id = res.headers.get('x-livinglab-export');
  try {
    await pipeline(res.body as unknown as NodeJS.ReadableStream, copy);
  } catch (err) {
    throw new GatewayError(
      'LL_EXPORT_INCOMPLETE',
      `the export broke off after ${rows()} (${(err as Error).message}); ${opts.out ?? 'the output'} is incomplete: delete it and export again${id ? ` (audit log export ${id})` : ''}`,
      { cause: err },
    );
  }
  process.stderr.write(
    `${tty ? '\r' : ''}exported ${rows()}${opts.out ? ` to ${opts.out}` : ''}${id ? ` (audit log export ${id})` : ''}\n`,
  );
}
