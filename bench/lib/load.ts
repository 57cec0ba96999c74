// The parent side of the publishers: splits devices over publisher processes, starts them together
// and merges what they report.
import { type ChildProcess, fork } from 'node:child_process';
import { TSX_LOADER } from './proc.js';
import type { PublisherDevice, PublisherJob, PublisherResult } from './publisher.js';
import { LatencyHistogram } from './stats.js';

const PUBLISHER = new URL('./publisher.ts', import.meta.url).pathname;

export interface LoadOptions {
  readonly url: string;
  /** CA certificate (PEM) the publishers trust when url is mqtts://. */
  readonly ca?: string;
  readonly devices: readonly PublisherDevice[];
  readonly batch: number;
  readonly messagesPerSecond: number;
  readonly durationMs: number;
  /** Publisher processes (each one gets an equal share of devices and rate). */
  readonly processes: number;
  readonly drainTimeoutMs?: number;
  /** Leading part of durationMs left out of the PUBACK latencies. */
  readonly warmupMs?: number;
  /** Loopback source addresses to spread the devices' connections over (publisher.ts). */
  readonly sourceAddresses?: readonly string[];
}

export interface LoadResult extends Omit<PublisherResult, 'puback' | 'cpuSeconds' | 'peakRssMiB'> {
  readonly puback: LatencyHistogram;
  /** Messages per second the publishers actually reached. */
  readonly achievedMessagesPerSecond: number;
  /** Per publisher process: CPU share of one core over the run, peak RSS. */
  readonly publishers: { cpuPercent: number; peakRssMiB: number }[];
}

export interface RunningLoad {
  /** Resolves when every publisher is connected. */
  readonly ready: Promise<void>;
  /** Starts publishing; resolves with the merged result. */
  go(): Promise<LoadResult>;
  pids(): number[];
}

/** The next IPC message of a type from a bench child process; rejects on its error or exit. */
export function waitFor<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string; message?: string }) => {
      if (m.type === type) {
        child.off('message', onMessage);
        resolve(m as T);
      } else if (m.type === 'error') reject(new Error(`publisher: ${m.message}`));
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`publisher exited with ${code} before '${type}'`)));
  });
}

export function startLoad(opts: LoadOptions): RunningLoad {
  const n = Math.max(1, Math.min(opts.processes, opts.devices.length));
  const children: ChildProcess[] = [];
  for (let p = 0; p < n; p++) {
    const devices = opts.devices.filter((_, i) => i % n === p);
    const job: PublisherJob = {
      url: opts.url,
      ...(opts.ca ? { ca: opts.ca } : {}),
      devices,
      batch: opts.batch,
      messagesPerSecond: opts.messagesPerSecond / n,
      durationMs: opts.durationMs,
      warmupMs: opts.warmupMs ?? 0,
      drainTimeoutMs: opts.drainTimeoutMs ?? 30_000,
      ...(opts.sourceAddresses ? { sourceAddresses: opts.sourceAddresses } : {}),
    };
    const child = fork(PUBLISHER, [], {
      execArgv: ['--import', TSX_LOADER, '--max-old-space-size=4096'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.send(job);
    children.push(child);
  }
  const ready = Promise.all(children.map((c) => waitFor(c, 'ready'))).then(() => undefined);
  return {
    ready,
    pids: () => children.map((c) => c.pid ?? 0),
    async go() {
      await ready;
      const done = children.map((c) => waitFor<{ result: PublisherResult }>(c, 'done'));
      for (const c of children) c.send({ type: 'go' });
      const results = (await Promise.all(done)).map((d) => d.result);
      const puback = new LatencyHistogram();
      for (const r of results) puback.merge(new LatencyHistogram(r.puback.counts, r.puback.max));
      const sum = (f: (r: PublisherResult) => number) => results.reduce((a, r) => a + f(r), 0);
      const publishSeconds = Math.max(...results.map((r) => r.publishSeconds));
      return {
        sent: sum((r) => r.sent),
        acked: sum((r) => r.acked),
        readingsAcked: sum((r) => r.readingsAcked),
        failed: sum((r) => r.failed),
        unacked: sum((r) => r.unacked),
        disconnects: sum((r) => r.disconnects),
        connectRetries: sum((r) => r.connectRetries),
        publishSeconds,
        ackTailMs: Math.max(...results.map((r) => r.ackTailMs)),
        puback,
        achievedMessagesPerSecond: sum((r) => r.sent) / publishSeconds,
        publishers: results.map((r) => ({
          cpuPercent: (r.cpuSeconds / (r.publishSeconds + r.ackTailMs / 1000)) * 100,
          peakRssMiB: r.peakRssMiB,
        })),
      };
    },
  };
}
