// Busy time of a V8 CPU profile (`node --cpu-prof`) by owner: kernel socket work, aedes, Node's
// streams, our own modules, the garbage collector. This is the "where the time goes" table of
// BENCHMARKS.md; owners are told apart by the script URL of each sampled function.

interface CallFrame {
  functionName: string;
  url: string;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileShare {
  owner: string;
  /** Share of the busy (non-idle) time, 0–1. */
  share: number;
  microseconds: number;
}

export interface ProfileSummary {
  wallSeconds: number;
  /** Share of the wall time the main thread was not idle, 0–1. */
  busy: number;
  owners: ProfileShare[];
}

const AEDES_DEPS =
  /node_modules\/(aedes[^/]*|mqtt-packet|bl|qlobber|mqemitter|fastfall|fastparallel|fastseries|reusify|retimer|hyperid|end-of-stream|debug)\//;

/** The owner a sampled function is counted under. */
export function ownerOf(frame: CallFrame): string {
  const { url, functionName: fn } = frame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'garbage collector';
  // Native stream writes: the write syscall, and on loopback the receiving side's TCP work too.
  if (url === '' && /^write(Buffer|v|Utf8String|Latin1String)$/.test(fn)) return 'socket writes (syscalls)';
  if (url === '' && fn === 'read') return 'socket reads (syscalls)';
  if (AEDES_DEPS.test(url)) return 'aedes, mqtt-packet, qlobber and helpers';
  if (/node_modules\/ajv/.test(url) || /\/(src|dist\/src)\/(ingest|broker|registry)\//.test(url))
    return 'our ingest and broker hooks (incl. ajv)';
  if (/\/(src|dist\/src)\/storage\//.test(url)) return 'our storage (spool, line protocol, drain)';
  if (/\/(src|dist\/src)\//.test(url)) return 'our app wiring, jobs, metrics';
  if (/^node:(internal\/(streams|fs|timers|process|buffer)|buffer|events|stream)/.test(url))
    return 'Node core: streams, buffers, events, timers, fs';
  if (url.startsWith('node:')) return 'Node core: other (net, zlib, http client)';
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (dep) return `other dependencies (${dep})`;
  return 'other (V8 program, compiled regexps)';
}

export function summarizeProfile(profile: CpuProfile): ProfileSummary {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byOwner = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const frame = frames.get(id);
    if (!frame || dt <= 0) return;
    total += dt;
    const owner = ownerOf(frame);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + dt);
  });
  const idle = byOwner.get('idle') ?? 0;
  byOwner.delete('idle');
  const busyUs = total - idle;
  const owners = [...byOwner]
    .map(([owner, us]) => ({ owner, microseconds: us, share: busyUs > 0 ? us / busyUs : 0 }))
    .sort((a, b) => b.microseconds - a.microseconds);
  return { wallSeconds: total / 1e6, busy: total > 0 ? busyUs / total : 0, owners };
}
