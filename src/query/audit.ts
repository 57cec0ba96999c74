// The export audit log: two JSON lines per export, one when it starts (time, researcher, project,
// parameters) and one when it ends (rows sent, and whether it finished, failed or was cut off by a
// client that hung up), joined by an export id. An export that never gets its second line was
// interrupted by the gateway stopping. Each line carries the SHA-256 of the previous line, so a
// changed, inserted or deleted entry breaks the chain. Append-only, mode 0600.
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

interface AuditCommon {
  readonly at: string;
  /** Joins an export's start and end entries. */
  readonly export: string;
  readonly researcher: string;
  readonly project: string;
  readonly via: 'api' | 'cli';
}

/** Written before the first byte of an export leaves the gateway. */
export interface ExportStarted extends AuditCommon {
  readonly event: 'export-started';
  readonly query: Record<string, unknown>;
}

/**
 * Written when the export is over: `finished` (every row delivered), `failed` (the gateway could
 * not produce the rest, `error` says why) or `cut-off` (the client hung up). `rows` counts the rows
 * handed to the connection.
 */
export interface ExportEnded extends AuditCommon {
  readonly event: 'export-ended';
  readonly status: 'finished' | 'failed' | 'cut-off';
  readonly rows: number;
  readonly error?: string;
}

export type AuditEntry = ExportStarted | ExportEnded;

const GENESIS = '0'.repeat(64);
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

export interface AuditLog {
  append(entry: AuditEntry): Promise<void>;
}

export function createAuditLog(file: string): AuditLog {
  let last: string | undefined;
  let chain: Promise<void> = Promise.resolve();
  const lastHash = async () => {
    if (last !== undefined) return last;
    const text = await readFile(file, 'utf8').catch(() => '');
    const lines = text.split('\n').filter(Boolean);
    last = lines.length > 0 ? sha256(lines[lines.length - 1] as string) : GENESIS;
    return last;
  };
  return {
    append(entry) {
      const done = chain.then(async () => {
        await mkdir(dirname(file), { recursive: true });
        const line = JSON.stringify({ ...entry, prev: await lastHash() });
        await appendFile(file, `${line}\n`, { mode: 0o600 });
        last = sha256(line);
      });
      chain = done.catch(() => undefined);
      return done;
    },
  };
}

/** Checks the chain; returns the 1-based line of the first break, or undefined when intact. */
export async function verifyAuditLog(
  file: string,
): Promise<{ entries: number; brokenAt?: number; reason?: string }> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  let prev = GENESIS;
  for (const [i, line] of lines.entries()) {
    let parsed: { prev?: unknown };
    try {
      parsed = JSON.parse(line) as { prev?: unknown };
    } catch {
      return { entries: lines.length, brokenAt: i + 1, reason: 'not JSON' };
    }
    if (parsed.prev !== prev) {
      return {
        entries: lines.length,
        brokenAt: i + 1,
        reason: 'does not follow the entry before it (changed, inserted or deleted entry)',
      };
    }
    prev = sha256(line);
  }
  return { entries: lines.length };
}
