// The data-quality report of one day (the lab's, midnight to midnight in its time zone), per device: readings expected (24 h / interval) and
// received, completeness, gaps longer than 3 intervals, rejects by reason, clock-skew rejections
// (reason "time"), battery trend. Written as Markdown, JSON and an SVG chart per site (completeness
// by device) to DATA_DIR/reports/. Reads InfluxDB through the 1.x /query API; an unreadable line in
// a rejects log is skipped and counted, never a reason to fail the whole report.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REJECTS_LOG_NAME, reportFiles, resolveDataPaths } from '../config/data-paths.js';
import { parseDuration } from '../config/duration.js';
import { GatewayError } from '../errors.js';
import type { Device } from '../registry/types.js';
import type { SchemaSet } from '../schemas/types.js';
import { type InfluxAuth, queryRows, quoteIdent, quoteString } from '../storage/influxql.js';
import { readRejects } from '../storage/rejects-log.js';
import { clockOf, dayBounds } from './lab-day.js';

export const GAP_INTERVALS = 3;

export interface DeviceQuality {
  deviceId: string;
  site: string;
  type: string;
  interval: string | null;
  expected: number | null;
  received: number;
  completeness: number | null;
  gaps: { from: string; to: string; minutes: number }[];
  rejects: Record<string, number>;
  clockSkewRejects: number;
  battery: { first: number; last: number } | null;
}

export interface QualityReport {
  date: string;
  /** The IANA time zone whose midnight-to-midnight `date` covers. */
  timeZone: string;
  generatedAt: string;
  /** Lines of the rejects logs that could not be read (torn by a crash, edited by hand): skipped. */
  unreadableRejectLines: number;
  devices: DeviceQuality[];
}

/** A rejects log line that could not be read: which file and line. */
export interface UnreadableLine {
  file: string;
  line: number;
}

/** Rejections per device and reason on that day, from the current and rotated rejects logs. */
async function rejectsOfDay(
  dataDir: string,
  from: number,
  to: number,
  unreadable: UnreadableLine[],
): Promise<Map<string, Record<string, number>>> {
  const out = new Map<string, Record<string, number>>();
  const files = (await readdir(dataDir).catch(() => [] as string[])).filter((n) => REJECTS_LOG_NAME.test(n));
  for (const name of files) {
    const file = join(dataDir, name);
    for await (const e of readRejects(file, (line) => unreadable.push({ file, line }))) {
      const t = Date.parse(e.receivedAt);
      if (t < from || t >= to || !e.clientId) continue;
      const counts = out.get(e.clientId) ?? {};
      // Per-reason counts of all rejections, when the listed ones were capped (pipeline.ts).
      if (e.reasons)
        for (const [reason, n] of Object.entries(e.reasons))
          counts[reason] = (counts[reason] ?? 0) + (n ?? 0);
      else for (const r of e.rejections) counts[r.reason] = (counts[r.reason] ?? 0) + 1;
      out.set(e.clientId, counts);
    }
  }
  return out;
}

/** The readings of one device on the day; InfluxDB's refusals come as InfluxQueryError (influxql.ts). */
async function readingsOf(
  opts: { influxUrl: string; db: string; auth?: InfluxAuth },
  measurement: string,
  deviceId: string,
  from: number,
  to: number,
): Promise<Record<string, unknown>[]> {
  return await queryRows(
    { url: opts.influxUrl, db: opts.db, ...(opts.auth ? { auth: opts.auth } : {}) },
    `SELECT * FROM ${quoteIdent(measurement)} WHERE device_id = ${quoteString(deviceId)} AND time >= ${from}ms AND time < ${to}ms`,
  );
}

export async function buildQualityReport(opts: {
  date: string;
  /** The lab's IANA time zone; UTC when absent. */
  timeZone?: string;
  devices: Iterable<Device>;
  schemas: SchemaSet;
  influxUrl: string;
  db: string;
  /** The read credentials (influxql.ts influxReadTarget); absent: none. */
  auth?: InfluxAuth;
  dataDir: string;
  /** Told of each rejects log line that could not be read (it is skipped and counted). */
  onUnreadable?: (lines: readonly UnreadableLine[]) => void;
}): Promise<QualityReport> {
  const timeZone = opts.timeZone ?? 'UTC';
  const { from, to } = dayBounds(opts.date, timeZone);
  if (Number.isNaN(from))
    throw new GatewayError('LL_INPUT_INVALID', `not a date: ${opts.date} (use YYYY-MM-DD)`);
  const unreadable: UnreadableLine[] = [];
  const rejects = await rejectsOfDay(opts.dataDir, from, to, unreadable);
  if (unreadable.length > 0) opts.onUnreadable?.(unreadable);
  const devices: DeviceQuality[] = [];
  for (const d of opts.devices) {
    const schema = opts.schemas.get(d.type, d.schemaVersion);
    const rows = schema ? await readingsOf(opts, schema.timeseries.measurement, d.id, from, to) : [];
    const times = rows.map((r) => r.time as number).sort((a, b) => a - b);
    const intervalMs = d.interval ? parseDuration(d.interval) : undefined;
    const gaps: DeviceQuality['gaps'] = [];
    if (intervalMs) {
      const edges = [from, ...times, to];
      for (let i = 1; i < edges.length; i++) {
        const a = edges[i - 1] as number;
        const b = edges[i] as number;
        if (b - a > GAP_INTERVALS * intervalMs) {
          gaps.push({
            from: new Date(a).toISOString(),
            to: new Date(b).toISOString(),
            minutes: Math.round((b - a) / 60_000),
          });
        }
      }
    }
    const batteries = rows.filter((r) => typeof r.battery === 'number').map((r) => r.battery as number);
    const expected = intervalMs ? Math.floor((to - from) / intervalMs) : null;
    const r = rejects.get(d.id) ?? {};
    devices.push({
      deviceId: d.id,
      site: d.site,
      type: d.type,
      interval: d.interval ?? null,
      expected,
      received: rows.length,
      completeness: expected ? Math.round((rows.length / expected) * 1000) / 1000 : null,
      gaps,
      rejects: r,
      clockSkewRejects: r.time ?? 0,
      battery:
        batteries.length > 0
          ? { first: batteries[0] as number, last: batteries[batteries.length - 1] as number }
          : null,
    });
  }
  return {
    date: opts.date,
    timeZone,
    generatedAt: new Date().toISOString(),
    unreadableRejectLines: unreadable.length,
    devices,
  };
}

const esc = (s: string) =>
  s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string);

/** One bar chart per site: completeness of each device, 0–100 %. */
export function renderCompletenessSvg(report: QualityReport): string {
  const sites = [...new Set(report.devices.map((d) => d.site))].sort();
  const rowH = 18;
  const width = 720;
  const parts: string[] = [];
  let y = 40;
  for (const site of sites) {
    const list = report.devices.filter((d) => d.site === site);
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(site)}</text>`);
    y += 8;
    for (const d of list) {
      const c = d.completeness ?? 0;
      const w = Math.round(Math.min(1, c) * 400);
      const colour =
        d.completeness === null ? '#bbb' : c >= 0.95 ? '#2e7d32' : c >= 0.8 ? '#f9a825' : '#c62828';
      parts.push(
        `<text x="20" y="${y + 13}" font-size="12">${esc(d.deviceId)}</text>`,
        `<rect x="260" y="${y + 2}" width="400" height="14" fill="#eee"/>`,
        `<rect x="260" y="${y + 2}" width="${w}" height="14" fill="${colour}"/>`,
        `<text x="${270 + w}" y="${y + 13}" font-size="11">${d.completeness === null ? 'no interval' : `${Math.round(c * 100)} %`}</text>`,
      );
      y += rowH;
    }
    y += 16;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif">
<text x="10" y="20" font-size="15">Completeness by device, ${esc(report.date)} (${esc(report.timeZone)})</text>
${parts.join('\n')}
</svg>
`;
}

export function renderMarkdown(report: QualityReport): string {
  const lines = [
    `# Data quality, ${report.date} (${report.timeZone})`,
    '',
    `Generated ${report.generatedAt}. Completeness = readings received / expected (the day's hours ÷ interval); a gap is a silence longer than ${GAP_INTERVALS} intervals (times in ${report.timeZone}).`,
    '',
    ...(report.unreadableRejectLines > 0
      ? [
          `${report.unreadableRejectLines} unreadable line(s) in the rejects logs were skipped; the rejects counts may be short.`,
          '',
        ]
      : []),
    '| device | site | type | expected | received | completeness | gaps | rejects | clock skew | battery |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const d of report.devices) {
    const rejects =
      Object.entries(d.rejects)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0';
    const gaps =
      d.gaps
        .map(
          (g) => `${clockOf(g.from, report.timeZone)}–${clockOf(g.to, report.timeZone)} (${g.minutes} min)`,
        )
        .join('; ') || '—';
    lines.push(
      `| ${d.deviceId} | ${d.site} | ${d.type} | ${d.expected ?? '—'} | ${d.received} | ${d.completeness === null ? '—' : `${(d.completeness * 100).toFixed(1)} %`} | ${gaps} | ${rejects} | ${d.clockSkewRejects} | ${d.battery ? `${d.battery.first} → ${d.battery.last} %` : '—'} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function writeQualityReport(report: QualityReport, dataDir: string): Promise<string[]> {
  const dir = resolveDataPaths(dataDir).reports;
  await mkdir(dir, { recursive: true });
  const files = reportFiles(report.date).map((name) => join(dir, name));
  await writeFile(files[0] as string, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(files[1] as string, renderMarkdown(report));
  await writeFile(files[2] as string, renderCompletenessSvg(report));
  return files;
}
