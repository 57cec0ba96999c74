// The PointSink the pipeline writes to: one queue record per message, holding its points as line
// protocol, so the drain never has to re-encode and a replay writes exactly the same lines.
import { toLine } from './line-protocol.js';
import type { Point } from './point.js';
import type { RecordQueue } from './queue.js';
import type { PointSink } from './writer.js';

export function createQueueSink(queue: RecordQueue): PointSink {
  return {
    append(points: readonly Point[]) {
      if (points.length === 0) return Promise.resolve();
      return queue.append([Buffer.from(points.map(toLine).join('\n'), 'utf8')]);
    },
  };
}
