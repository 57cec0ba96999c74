// Pure: what an HTTP answer of a write endpoint (InfluxDB 1.x /write, 2.x /api/v2/write) means for
// the drain: done, retry later, or bad data to isolate.
import { parseRetryAfter } from './backoff.js';
import type { WriteResult } from './writer.js';

/** Maps an HTTP answer of a write endpoint to what the drain should do. */
export function classifyWriteResponse(status: number, body: string, retryAfter: string | null): WriteResult {
  if (status >= 200 && status < 300) return { ok: true };
  let message = body.trim().slice(0, 500);
  try {
    const parsed = JSON.parse(body) as { error?: string; message?: string };
    message = parsed.error ?? parsed.message ?? message;
  } catch {
    // plain-text body
  }
  message = `HTTP ${status}: ${message}`;
  if (status === 413) return { ok: false, kind: 'too-large', status, message };
  // Bad data: unparsable lines, field type conflicts, points beyond the retention policy.
  if (status === 400 || status === 422) return { ok: false, kind: 'bad-data', status, message };
  // Everything else (401/403 credentials, 404 database missing, 429, 5xx) is not the data's fault.
  const retryAfterMs = parseRetryAfter(retryAfter);
  return {
    ok: false,
    kind: 'retry',
    status,
    message,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}
