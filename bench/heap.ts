// What the gateway's live heap is made of: a heap snapshot summed by constructor, as a table.
//
//   npx tsx bench/connections.ts --runs 1 --heap-snapshot /tmp/heap
//   npx tsx bench/heap.ts /tmp/heap/*.heapsnapshot [--top 30] [--per 10000]
//
// --per N (e.g. the number of connected devices) adds a bytes-per-item column.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type HeapSnapshot, summarizeHeap } from './lib/heap.js';
import { fmt, table } from './lib/report.js';

const { values: args, positionals: files } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, per: { type: 'string' } },
});
if (files.length === 0) {
  console.error('Usage: npx tsx bench/heap.ts <file.heapsnapshot>... [--top 30] [--per <devices>]');
  process.exit(2);
}
const per = args.per ? Number(args.per) : undefined;
if (per !== undefined && !(per > 0)) {
  console.error(`--per "${args.per}" is not a positive number`);
  process.exit(2);
}
const MiB = 2 ** 20;
for (const file of files) {
  let summary: ReturnType<typeof summarizeHeap>;
  try {
    summary = summarizeHeap(JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot);
  } catch (err) {
    console.error(`${file}: not a readable heap snapshot (${(err as Error).message})`);
    process.exit(1);
  }
  console.log(`## ${file}: ${fmt(summary.bytes / MiB, 1)} MiB live in ${fmt(summary.nodes)} heap objects\n`);
  const head = ['kind', 'count', 'MiB', 'share %', ...(per ? [`bytes per ${fmt(per)}`] : [])];
  const rows = summary.rows
    .slice(0, Number(args.top))
    .map((r) => [
      r.kind,
      fmt(r.count),
      fmt(r.bytes / MiB, 2),
      fmt((100 * r.bytes) / summary.bytes, 1),
      ...(per ? [fmt(r.bytes / per)] : []),
    ]);
  console.log(`${table(head, rows)}\n`);
}
