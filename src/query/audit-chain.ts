// The audit log's chain, as pure functions over bytes: how an entry line is sealed and how a whole
// log is checked. Two chains meet in one file. Legacy lines (written before the audit key existed)
// carry `prev`, the SHA-256 of the line before. Sealed lines carry `seq` (the entry's number, from
// 1), `prev` (the MAC of the entry before, or the SHA-256 of the last legacy line) and `mac`,
// HMAC-SHA256 under the audit key of the line's own bytes up to the MAC. Without the key nobody can
// rewrite a sealed entry, and since the first sealed entry names the last legacy line, the legacy
// part before it cannot be rewritten either. A truncation is caught against the head (count and
// last MAC) that the writer keeps outside the data folder. Never touches the disk.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const GENESIS = '0'.repeat(64);
export const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** What the writer keeps outside the data folder after each sealed append. */
export interface AuditHead {
  /** The `seq` of the last sealed entry. */
  readonly count: number;
  readonly mac: string;
}

/** Where the chain ends: what the next entry links to. */
export interface ChainEnd {
  readonly seq: number;
  readonly prev: string;
  readonly sealed: boolean;
}

const MAC_SUFFIX = /,"mac":"([0-9a-f]{64})"\}$/;

export type ParsedLine =
  | { kind: 'sealed'; seq: number; prev: string; mac: string; body: string; event: unknown; raw: unknown }
  | { kind: 'legacy'; prev: string; event: unknown; raw: unknown };

/** An entry line, or undefined for bytes that are not one (a torn append). */
export function parseLine(line: string): ParsedLine | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || typeof raw.prev !== 'string') return undefined;
  const m = MAC_SUFFIX.exec(line);
  if (m && typeof raw.seq === 'number') {
    const body = `${line.slice(0, m.index)}}`;
    return { kind: 'sealed', seq: raw.seq, prev: raw.prev, mac: m[1] as string, body, event: raw.event, raw };
  }
  return { kind: 'legacy', prev: raw.prev, event: raw.event, raw };
}

const hmac = (key: Buffer, body: string) => createHmac('sha256', key).update(body, 'utf8').digest('hex');

/** The line of `entry` as the entry after `end`; `key` absent: a legacy line (no audit key yet). */
export function sealLine(
  entry: object,
  end: ChainEnd,
  key: Buffer | undefined,
): { line: string; next: ChainEnd } {
  if (!key) {
    const line = JSON.stringify({ ...entry, prev: end.prev });
    return { line, next: { seq: end.seq + 1, prev: sha256(line), sealed: false } };
  }
  const seq = end.seq + 1;
  const body = JSON.stringify({ ...entry, seq, prev: end.prev });
  const mac = hmac(key, body);
  return { line: `${body.slice(0, -1)},"mac":"${mac}"}`, next: { seq, prev: mac, sealed: true } };
}

/** The chain end after `line`, given the number of entries up to and including it. */
export function endAfter(line: string, parsed: ParsedLine, count: number): ChainEnd {
  return parsed.kind === 'sealed'
    ? { seq: parsed.seq, prev: parsed.mac, sealed: true }
    : { seq: count, prev: sha256(line), sealed: false };
}

export interface VerifyResult {
  /** Entries in the chain (torn fragments and their records excluded from nothing: records count). */
  entries: number;
  /** Legacy (SHA-256) entries at the start of the log. */
  legacy: number;
  /** Line of the first sealed entry. */
  sealedFrom?: number;
  brokenAt?: number;
  reason?: string;
  /** Things that are not tampering but a technician should know (a failed append at the end). */
  notes: string[];
  /** The log has sealed entries but no key was given to check them. */
  needsKey?: boolean;
}

interface Walk {
  key: Buffer | undefined;
  end: ChainEnd;
  legacy: number;
  sealedFrom?: number;
  /** MAC of the sealed entry whose seq equals the head's count, once reached. */
  macAtHead?: string;
  head: AuditHead | undefined;
}

/** Checks one entry against the chain so far; returns why it breaks the chain, if it does. */
function checkEntry(w: Walk, line: string, p: ParsedLine, lineNo: number): string | undefined {
  if (p.kind === 'legacy') {
    if (w.end.sealed) return 'an entry without a MAC after the MAC chain started (inserted or rewritten)';
    if (p.prev !== w.end.prev)
      return 'does not follow the entry before it (changed, inserted or deleted entry)';
    w.legacy++;
    w.end = endAfter(line, p, w.end.seq + 1);
    return undefined;
  }
  const key = w.key as Buffer;
  const expected = Buffer.from(hmac(key, p.body), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(p.mac, 'hex')))
    return 'its MAC does not match: the entry was changed (or sealed with another audit key)';
  if (p.seq !== w.end.seq + 1)
    return `is entry ${p.seq} where entry ${w.end.seq + 1} belongs: entries were deleted or inserted before it`;
  if (p.prev !== w.end.prev)
    return 'does not follow the entry before it (deleted, inserted or reordered entry)';
  if (p.event === 'head-mismatch') {
    const r = p.raw as { head?: AuditHead; found?: { count?: number } };
    return `entries were missing when this entry was written: the head recorded ${r.head?.count} entries, the log had ${r.found?.count}`;
  }
  w.sealedFrom ??= lineNo;
  w.end = endAfter(line, p, p.seq);
  if (w.head && p.seq === w.head.count) w.macAtHead = p.mac;
  return undefined;
}

/** A torn fragment is allowed only when the next line is the sealed record of exactly those bytes. */
function tornRecordFor(next: string | undefined, offset: number, bytes: Buffer): boolean {
  const p = next === undefined ? undefined : parseLine(next);
  if (p?.event !== 'torn-line') return false;
  const r = p.raw as { offset?: unknown; bytes?: unknown; sha256?: unknown };
  return r.offset === offset && r.bytes === bytes.length && r.sha256 === sha256(bytes);
}

function checkHead(w: Walk): string | undefined {
  const { head } = w;
  if (!head) {
    return w.end.sealed
      ? 'the audit head file is missing, so a cut-off end of the log cannot be ruled out'
      : undefined;
  }
  if (w.end.seq < head.count)
    return `the log ends at entry ${w.end.seq} but the head records ${head.count}: the last ${head.count - w.end.seq} entries were cut off`;
  if (w.macAtHead !== head.mac)
    return `entry ${head.count} is not the one the head records: entries at the end were replaced`;
  return undefined;
}

/** Splits a log into lines with their byte offsets; the last element is what follows the last newline. */
function splitLines(data: Buffer): { bytes: Buffer; offset: number }[] {
  const out: { bytes: Buffer; offset: number }[] = [];
  let start = 0;
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, start)) {
    out.push({ bytes: data.subarray(start, i), offset: start });
    start = i + 1;
  }
  out.push({ bytes: data.subarray(start), offset: start });
  return out;
}

/**
 * Checks a whole log. `head` is what the writer recorded; `key` the audit key. A line that is not
 * an entry is accepted only when a sealed torn-line record of its bytes follows it; bytes after the
 * last newline that are not an entry are an append that failed, noted but not a break.
 */
export function verifyAuditText(data: Buffer, key: Buffer | undefined, head?: AuditHead): VerifyResult {
  const w: Walk = { key, end: { seq: 0, prev: GENESIS, sealed: false }, legacy: 0, head };
  const lines = splitLines(data);
  const notes: string[] = [];
  const result = (extra: Partial<VerifyResult> = {}): VerifyResult => ({
    entries: w.end.seq,
    legacy: w.legacy,
    ...(w.sealedFrom ? { sealedFrom: w.sealedFrom } : {}),
    notes,
    ...extra,
  });
  for (const [i, { bytes, offset }] of lines.entries()) {
    const last = i === lines.length - 1;
    if (bytes.length === 0) continue;
    const text = bytes.toString('utf8');
    const p = parseLine(text);
    if (!p) {
      if (last) notes.push(`line ${i + 1} is an unfinished append (a full disk?), not part of the chain`);
      else if (!tornRecordFor(lines[i + 1]?.bytes.toString('utf8'), offset, bytes))
        return result({ brokenAt: i + 1, reason: 'is not an entry, and no torn-line record follows it' });
      continue;
    }
    if (p.kind === 'sealed' && !key) return result({ needsKey: true, sealedFrom: i + 1 });
    const broken = checkEntry(w, text, p, i + 1);
    if (broken) return result({ brokenAt: i + 1, reason: broken });
  }
  const headBroken = checkHead(w);
  if (headBroken) return result({ brokenAt: lines.length, reason: headBroken });
  if (head && w.end.seq > head.count)
    notes.push(`the head lags ${w.end.seq - head.count} entries behind the log (a head update failed)`);
  return result();
}
