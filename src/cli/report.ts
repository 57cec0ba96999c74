// `livinglab report --date D`: the data-quality report of one day, on demand. Refuses a date that
// is not on the calendar or lies in the future; says which rejects log lines it had to skip.
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import { addDays, dayOf, reportDateProblem, resolveTimeZone } from '../jobs/lab-day.js';
import { buildQualityReport, writeQualityReport } from '../jobs/quality-report.js';
import { readRegistryFile } from '../registry/file.js';
import { loadSchemas } from '../schemas/load.js';
import { influxReadTarget } from '../storage/influxql.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

export function registerReportCommand(program: Command, env: Record<string, string | undefined>): void {
  addRegistryOption(
    program
      .command('report')
      .description(
        "write the data-quality report of one day (the lab's time zone) to DATA_DIR/reports: Markdown, JSON and a chart",
      )
      .option('--date <YYYY-MM-DD>', 'the day (default: yesterday)')
      .option('--influx-url <url>', 'InfluxDB URL (1.x, or 2.x/3.x through /query with --influx-api v2)')
      .option('--influx-db <name>', 'InfluxDB database')
      .option('--influx-api <v1|v2>', 'v2: read the bucket through /query with a token (its DBRP mapping)')
      .option('--influx-bucket <bucket>', 'InfluxDB bucket (v2)')
      .option('--data-dir <dir>', "the gateway's data folder (rejects log; reports are written under it)"),
  ).action(async (opts: CommonFlags & { date?: string }) => {
    const config = configFromFlags(opts, env);
    const timeZone = resolveTimeZone(config.timezone);
    const today = dayOf(Date.now(), timeZone);
    const date = opts.date ?? addDays(today, -1);
    const problem = reportDateProblem(date, today);
    if (problem) throw new GatewayError('LL_INPUT_INVALID', `--date: ${problem}`);
    const registry = await readRegistryFile(config.registry, config.secretsFile);
    const influx = influxReadTarget(config.influx);
    const report = await buildQualityReport({
      date,
      timeZone,
      devices: registry.devices,
      schemas: loadSchemas(config.schemasDir),
      influxUrl: influx.url,
      db: influx.db,
      ...(influx.auth ? { auth: influx.auth } : {}),
      dataDir: config.dataDir,
      onUnreadable: (lines) => {
        for (const { file, line } of lines.slice(0, 10))
          process.stderr.write(
            `warning: ${file}:${line}: not a rejects log entry (torn or edited); skipped\n`,
          );
        if (lines.length > 10)
          process.stderr.write(`warning: ${lines.length - 10} more unreadable lines skipped\n`);
      },
    });
    for (const file of await writeQualityReport(report, config.dataDir)) process.stdout.write(`${file}\n`);
  });
}
