// `livinglab report --date D`: the data-quality report of one day, on demand.
import type { Command } from 'commander';
import { GatewayError } from '../errors.js';
import { buildQualityReport, writeQualityReport } from '../jobs/quality-report.js';
import { readRegistryFile } from '../registry/file.js';
import { loadSchemas } from '../schemas/load.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

export function registerReportCommand(program: Command, env: Record<string, string | undefined>): void {
  addRegistryOption(
    program
      .command('report')
      .description(
        'write the data-quality report of one day (UTC) to DATA_DIR/reports: Markdown, JSON and a chart',
      )
      .option('--date <YYYY-MM-DD>', 'the day (default: yesterday)')
      .option('--influx-url <url>', 'InfluxDB 1.x URL')
      .option('--influx-db <name>', 'InfluxDB database')
      .option('--data-dir <dir>', "the gateway's data folder (rejects log; reports are written under it)"),
  ).action(async (opts: CommonFlags & { date?: string }) => {
    const date = opts.date ?? new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    if (!/^\d{4}-\d\d-\d\d$/.test(date) || Number.isNaN(Date.parse(date))) {
      throw new GatewayError('LL_INPUT_INVALID', `--date "${date}" is not a date like 2026-11-21`);
    }
    const config = configFromFlags(opts, env);
    const registry = await readRegistryFile(config.registry, config.secretsFile);
    let report: Awaited<ReturnType<typeof buildQualityReport>>;
    try {
      report = await buildQualityReport({
        date,
        devices: registry.devices,
        schemas: loadSchemas(config.schemasDir),
        influxUrl: config.influx.url,
        db: config.influx.db,
        dataDir: config.dataDir,
      });
    } catch (err) {
      throw new GatewayError(
        'LL_INFLUX_UNAVAILABLE',
        `InfluxDB at ${config.influx.url}: ${(err as Error).message}`,
      );
    }
    for (const file of await writeQualityReport(report, config.dataDir)) process.stdout.write(`${file}\n`);
  });
}
