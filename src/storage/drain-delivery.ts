// Delivery of one drain batch: writes its lines until each is in the database, retrying with
// backoff and jitter whatever is not the data's fault, and for bad data (4xx) splitting the batch
// until the offending lines are found; those go to the rejects log with InfluxDB's message. It
// never confirms: it returns only once every line is in one of the two places (or the drain stops).
import { backoffDelay } from './backoff.js';
import { type DrainContext, StopRequested } from './drain-context.js';
import type { QueuedRecord } from './queue.js';

interface BadLine {
  line: string;
  error: string;
}

function setHealthy(ctx: DrainContext, healthy: boolean, detail: Record<string, unknown>) {
  if (healthy === ctx.stats.healthy) return;
  ctx.stats.healthy = healthy;
  if (healthy) ctx.opts.log.info(detail, 'database writes recovered');
  else ctx.opts.log.warn(detail, 'database writes failing; readings stay in the spool and are retried');
}

/** Writes lines until each is in the database or isolated as bad; returns the bad ones. */
async function writeAll(ctx: DrainContext, lines: string[]): Promise<BadLine[]> {
  const { writer } = ctx.opts;
  let attempt = 0;
  for (;;) {
    const started = performance.now();
    const result = await writer.write(lines);
    if (result.ok) {
      setHealthy(ctx, true, { writer: writer.name });
      ctx.stats.onWriteLatency?.((performance.now() - started) / 1000);
      return [];
    }
    if (result.kind === 'retry') {
      attempt++;
      ctx.stats.writeRetries++;
      setHealthy(ctx, false, { writer: writer.name, status: result.status, err: result.message });
      if (ctx.stopping) throw new StopRequested();
      await ctx.sleep(backoffDelay(attempt, ctx.policy, result.retryAfterMs));
      if (ctx.stopping) throw new StopRequested();
      continue;
    }
    if (lines.length === 1) return [{ line: lines[0] as string, error: result.message }];
    // [InfluxDB 1.x] a 400 "partial write" has stored the good lines already; sending them again
    // overwrites the same series and timestamps, so splitting is safe.
    const mid = Math.ceil(lines.length / 2);
    const left = await writeAll(ctx, lines.slice(0, mid));
    const right = await writeAll(ctx, lines.slice(mid));
    return [...left, ...right];
  }
}

/** Moves points the database refused to the rejects log; retried until it takes them. */
async function moveToRejects(ctx: DrainContext, bad: BadLine[]) {
  const { log, rejects } = ctx.opts;
  for (const b of bad) {
    log.warn({ err: b.error }, 'database refused a point as bad data; moved to the rejects log');
    for (let attempt = 1; ; attempt++) {
      try {
        await rejects.append({
          receivedAt: new Date().toISOString(),
          clientId: '',
          topic: '',
          rejections: [{ reason: 'database', errors: [{ path: '', message: b.error }] }],
          payload: Buffer.from(b.line, 'utf8'),
          durable: true,
        });
        break;
      } catch (err) {
        // Not confirmed until it is in the rejects log: else it would be in neither place.
        if (attempt === 1) log.error({ err }, 'rejects log append failed; retrying');
        if (ctx.stopping) throw new StopRequested();
        await ctx.sleep(backoffDelay(attempt, ctx.policy));
      }
    }
  }
}

/** Writes one batch until every line is in the database or the rejects log. */
export async function deliverBatch(ctx: DrainContext, batch: QueuedRecord[]) {
  const lines = batch.flatMap((r) => r.payload.toString('utf8').split('\n'));
  const bad = await writeAll(ctx, lines);
  await moveToRejects(ctx, bad);
  const { stats } = ctx;
  stats.pointsRejected += bad.length;
  stats.pointsWritten += lines.length - bad.length;
  stats.batchesWritten++;
  stats.lastWriteAt = Date.now();
}
