// The export audit log: one JSON line per export (time, researcher, project, parameters, rows),
// each carrying the SHA-256 of the previous line, so a changed, inserted or deleted entry breaks
// the chain. Append-only, mode 0600.
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AuditEntry {
  readonly at: string;
  readonly researcher: string;
  readonly project: string;
  readonly via: 'api' | 'cli';
  readonly query: Record<string, unknown>;
  readonly rows: number;
}

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
