// `livinglab schemas check|validate`: the same checks and the same errors a device would get.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { bundledSchemasDir } from '../config/load.js';
import { GatewayError } from '../errors.js';
import { toFeedback } from '../ingest/feedback.js';
import { toPoint } from '../ingest/map.js';
import { validatePayload } from '../ingest/validate.js';
import { topicTemplate } from '../registry/topics.js';
import { loadSchemas } from '../schemas/load.js';

export function registerSchemaCommands(program: Command): void {
  const schemas = program
    .command('schemas')
    .description('check device schemas and validate messages against them');
  schemas
    .command('check')
    .description('load every schema, run the mapping checks and validate every example')
    .option('--schemas-dir <dir>', 'schema folder (default: the bundled device-schemas/)')
    .action((opts: { schemasDir?: string }) => {
      const set = loadSchemas(opts.schemasDir ?? bundledSchemasDir());
      for (const s of set.all()) {
        process.stdout.write(
          `ok  ${s.key.padEnd(26)} ${s.channel.padEnd(9)} ${s.timeseries.measurement.padEnd(24)} ${s.examples.length} example(s)\n`,
        );
      }
      process.stdout.write(`${set.all().length} schemas in ${set.dir} are valid\n`);
    });
  schemas
    .command('validate <file>')
    .description('validate a message file (one reading or {"readings": [...]}) as the gateway would')
    .requiredOption('--type <type>', 'device type')
    .option('--schema-version <n>', 'schema version (default: the newest)')
    .option('--schemas-dir <dir>', 'schema folder (default: the bundled device-schemas/)')
    .action(async (file: string, opts: { type: string; schemaVersion?: string; schemasDir?: string }) => {
      const set = loadSchemas(opts.schemasDir ?? bundledSchemasDir());
      const schema = opts.schemaVersion
        ? set.get(opts.type, Number(opts.schemaVersion))
        : set.latest(opts.type);
      if (!schema)
        throw new GatewayError(
          'LL_SCHEMA_UNKNOWN',
          `no schema for ${opts.type}${opts.schemaVersion ? `@${opts.schemaVersion}` : ''}`,
        );
      const payload = await readFile(file).catch((err: Error) => {
        throw new GatewayError('LL_INPUT_INVALID', `cannot read ${file}: ${err.message}`);
      });
      const result = validatePayload(payload, schema, { maxBatchReadings: 100_000 });
      const device = {
        id: 'check',
        type: schema.type,
        schemaVersion: schema.version,
        site: 'check',
        vendor: 'check',
        enabled: true,
        passwordHash: '',
        assignments: [],
      };
      const now = new Date();
      let valid = 0;
      for (const r of result.readings) {
        // Timestamps are checked as schema only: a file on disk has no receive time.
        const mapped = toPoint(r.value, r.index, schema, device, now, {
          maxFutureMs: Number.MAX_SAFE_INTEGER,
          maxAgeMs: Number.MAX_SAFE_INTEGER,
        });
        if ('reason' in mapped) result.rejections.push(mapped);
        else valid++;
      }
      const topic = topicTemplate(schema.channel, { type: schema.type });
      for (const r of result.rejections)
        process.stdout.write(`${JSON.stringify(toFeedback(topic, now, [r]))}\n`);
      process.stderr.write(
        `${file}: ${valid} valid reading(s), ${result.rejections.length} rejected (${schema.key})\n`,
      );
      if (result.rejections.length > 0) process.exitCode = 1;
    });
}
