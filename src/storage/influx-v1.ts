// Writer over the InfluxDB 1.x HTTP API through the npm `influx` package. Field types come from the
// device schemas (one node-influx schema per measurement), so node-influx never guesses a type.
import { FieldType, InfluxDB, type IPoint } from 'influx';
import { GatewayError } from '../errors.js';
import type { SchemaSet } from '../schemas/types.js';
import type { Point } from './point.js';
import type { Writer } from './writer.js';

export const BASE_TAGS = ['site', 'device_type', 'device_id', 'schema_version', 'subject'] as const;

const FIELD_TYPES = {
  integer: FieldType.INTEGER,
  float: FieldType.FLOAT,
  boolean: FieldType.BOOLEAN,
  string: FieldType.STRING,
} as const;

export interface InfluxV1Options {
  url: string;
  db: string;
  username?: string;
  password?: string;
  schemas: SchemaSet;
}

export function createInfluxClient(opts: Omit<InfluxV1Options, 'schemas'>): InfluxDB {
  const u = new URL(opts.url);
  return new InfluxDB({
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
    database: opts.db,
    ...(opts.username ? { username: opts.username, password: opts.password ?? '' } : {}),
  });
}

function measurementSchemas(schemas: SchemaSet, db: string) {
  const byMeasurement = new Map<string, { fields: Record<string, FieldType>; tags: Set<string> }>();
  for (const s of schemas.all()) {
    const m = s.timeseries.measurement;
    const entry = byMeasurement.get(m) ?? { fields: {}, tags: new Set<string>(BASE_TAGS) };
    for (const f of s.timeseries.fields) entry.fields[f.name] = FIELD_TYPES[f.kind];
    for (const t of s.timeseries.tags) entry.tags.add(t);
    byMeasurement.set(m, entry);
  }
  return [...byMeasurement].map(([measurement, e]) => ({
    measurement,
    fields: e.fields,
    tags: [...e.tags],
    database: db,
  }));
}

function toIPoint(p: Point): IPoint {
  const fields: Record<string, number | boolean | string> = {};
  for (const [name, f] of Object.entries(p.fields)) fields[name] = f.value;
  return { measurement: p.measurement, tags: { ...p.tags }, fields, timestamp: p.timestampNs };
}

export function createInfluxV1Writer(opts: InfluxV1Options): Writer {
  const client = createInfluxClient(opts);
  for (const schema of measurementSchemas(opts.schemas, opts.db)) client.addSchema(schema);
  return {
    async start() {
      try {
        const names = await client.getDatabaseNames();
        if (!names.includes(opts.db)) await client.createDatabase(opts.db);
      } catch (err) {
        throw new GatewayError(
          'LL_INFLUX_UNAVAILABLE',
          `InfluxDB at ${opts.url} (database "${opts.db}"): ${(err as Error).message}; is influxd running? (--influx-url)`,
          { cause: err },
        );
      }
    },
    async write(points) {
      if (points.length === 0) return;
      await client.writePoints(points.map(toIPoint), { precision: 'n', database: opts.db });
    },
    async ping() {
      const hosts = await client.ping(2000).catch(() => []);
      return hosts.some((h) => h.online);
    },
    async stop() {},
  };
}
