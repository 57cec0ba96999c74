// Where the gateway's time goes: busy time of a CPU profile by owner, as a table.
//
//   BENCH_GATEWAY_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" \
//     npx tsx bench/e2e.ts --systems gateway --rates 10000 --runs 1 --no-half
//   npx tsx bench/profile.ts /tmp/prof/CPU.*.cpuprofile [--rate 10000]
//
// With several files (the main thread and worker threads each write one), each gets its own table.
// --rate (messages/s offered while profiling) adds the main thread's CPU time per message.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type CpuProfile, summarizeProfile } from './lib/profile.js';
import { fmt, table } from './lib/report.js';

const { values: args, positionals: files } = parseArgs({
  allowPositionals: true,
  options: { rate: { type: 'string' }, top: { type: 'string', default: '12' } },
});
if (files.length === 0) {
  console.error('Usage: npx tsx bench/profile.ts <file.cpuprofile>... [--rate <messages/s>] [--top 12]');
  process.exit(2);
}
const rate = args.rate ? Number(args.rate) : undefined;
if (rate !== undefined && !(rate > 0)) {
  console.error(`--rate "${args.rate}" is not a positive number of messages per second`);
  process.exit(2);
}

for (const file of files) {
  let profile: CpuProfile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  } catch (err) {
    console.error(`${file}: not a readable CPU profile (${(err as Error).message})`);
    process.exit(1);
  }
  const s = summarizeProfile(profile);
  const perMessage =
    rate === undefined
      ? ''
      : `, ${fmt((s.busy * 1e6) / rate, 1)} µs of this thread per message at ${fmt(rate)}/s`;
  const top = s.owners.slice(0, Number(args.top));
  const rest = s.owners.slice(top.length).reduce((sum, o) => sum + o.share, 0);
  const rows = top.map((o) => [o.owner, `${fmt(o.share * 100, 1)} %`]);
  if (rest > 0) rows.push([`the rest (${s.owners.length - top.length} owners)`, `${fmt(rest * 100, 1)} %`]);
  console.log(
    [
      `## ${file}`,
      '',
      `${fmt(s.wallSeconds, 1)} s profiled, busy ${fmt(s.busy * 100)} % of it${perMessage}`,
      '',
      table(['where', 'share of busy time'], rows),
      '',
    ].join('\n'),
  );
}
