// The audit log: every export (two lines, one when it starts and one when it ends, with the rows
// sent and whether it finished, failed or was cut off) and every registry change that affects who
// can see what (projects, consents, tokens, devices, accounts). One JSON line per entry, mode 0600,
// in the data folder, chained and sealed as audit-chain.ts describes; the head (count and last MAC)
// is kept outside the data folder, beside the registry and its secrets file. The gateway and
// `livinglab` commands append to the same file: a lock file orders them (audit-lock.ts), and each
// append reads the chain's end from the file itself, never from memory. An append that failed
// half-way leaves a torn line: the next append ends it with a newline and records its bytes, so
// the chain is never extended from a torn line. Never writes a secret, a token or a password hash.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { resolveDataPaths } from '../config/data-paths.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { loadAuditKey } from '../registry/secrets-file.js';
import {
  type AuditHead,
  type ChainEnd,
  endAfter,
  GENESIS,
  type ParsedLine,
  parseLine,
  sealLine,
  sha256,
  type VerifyResult,
  verifyAuditText,
} from './audit-chain.js';
import { withLock } from './audit-lock.js';

export type { AuditHead, VerifyResult } from './audit-chain.js';

interface AuditCommon {
  readonly at: string;
  /** Joins an export's start and end entries. */
  readonly export: string;
  readonly researcher: string;
  readonly project: string;
  /** Decided by the server: 'api' for every export over HTTP ('cli' only in entries of old logs). */
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

export const REGISTRY_CHANGES = [
  'project-added',
  'consent-given',
  'consent-withdrawn',
  'token-issued',
  'token-revoked',
  'device-added',
  'device-enabled',
  'device-disabled',
  'device-removed',
  'device-assigned',
  'device-password-set',
  'device-certificate-set',
  'device-provenance-set',
  'account-added',
] as const;

/**
 * A change to the registry that affects who can see or send what, written after the registry file
 * was written. `by` is who ran the command (user@host); the other fields name what changed (ids,
 * dates, types), never a secret.
 */
export interface RegistryChange {
  readonly at: string;
  readonly event: (typeof REGISTRY_CHANGES)[number];
  readonly by: string;
  readonly via: 'cli';
  readonly registry: string;
  readonly [detail: string]: unknown;
}

export type AuditEntry = ExportStarted | ExportEnded | RegistryChange;

/** The file seam, so a test can make the disk fill up in the middle of an append. */
export interface AuditFile {
  /** Appends all of `data` (O_APPEND), or rejects having written any part of it. */
  append(data: Buffer): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface AuditLogOptions {
  /** The log, in the data folder (config/data-paths.ts). */
  readonly file: string;
  /** The head, outside the data folder (auditHeadFile); required with `key`. */
  readonly headFile?: string;
  /**
   * The audit key from the secrets file (hex, or loaded at the first append and kept); without one
   * entries get the legacy SHA-256 chain. A loader that throws makes every append fail: a lost
   * secrets file must stop the audit, never start a chain under a new key.
   */
  readonly key?: string | (() => Promise<Buffer>);
  readonly openFile?: (file: string) => Promise<AuditFile>;
}

export interface AuditLog {
  /** Resolves once the entry is on disk (fsync) and the head records it; appends run one at a time. */
  append(entry: AuditEntry): Promise<void>;
}

/**
 * The audit log of a configuration, for the gateway and the commands alike: the log in the data
 * folder, the head beside the registry, the key from the registry's secrets file. The head is not
 * put beside a secrets file given by path: that may be a read-only container secret.
 */
export function auditLogOptions(config: Config): AuditLogOptions & { key: () => Promise<Buffer> } {
  return {
    file: resolveDataPaths(config.dataDir).auditLog,
    headFile: auditHeadFile(config.registry),
    key: () => loadAuditKey(config.registry, config.secretsFile),
  };
}

/** The head file of the registry at `registryFile`: beside it (and its secrets file), not in the data folder. */
export function auditHeadFile(registryFile: string): string {
  return join(dirname(registryFile), `${basename(registryFile).replace(/\.ya?ml$/i, '')}.audit-head.json`);
}

async function openAppend(file: string): Promise<AuditFile> {
  const h = await open(file, 'a', 0o600);
  return { append: (data) => h.appendFile(data), sync: () => h.sync(), close: () => h.close() };
}

export function createAuditLog(opts: AuditLogOptions): AuditLog {
  if (opts.key && !opts.headFile) throw new Error('createAuditLog: a key needs a head file');
  let key: Buffer | undefined = typeof opts.key === 'string' ? Buffer.from(opts.key, 'hex') : undefined;
  let chain: Promise<void> = Promise.resolve();
  return {
    append(entry) {
      const done = chain.then(async () => {
        if (!key && typeof opts.key === 'function') key = await opts.key();
        await mkdir(dirname(opts.file), { recursive: true });
        await withLock(`${opts.file}.lock`, () => appendLocked(opts, key, entry));
      });
      chain = done.catch(() => undefined);
      return done;
    },
  };
}

async function appendLocked(opts: AuditLogOptions, key: Buffer | undefined, entry: AuditEntry) {
  const { end: found, tail } = await readChainEnd(opts.file);
  if (found.sealed && !key)
    throw new GatewayError(
      'LL_AUDIT_KEY_MISSING',
      `${opts.file} is sealed with the audit key, but no audit key was given (secrets file missing?); nothing was appended`,
    );
  const at = new Date().toISOString();
  const lines: string[] = [];
  let end = found;
  const seal = (e: object) => {
    const r = sealLine(e, end, key);
    lines.push(r.line);
    end = r.next;
  };
  // A torn line is ended and its bytes recorded, never extended (ENOSPC in the middle of an append).
  if (tail && !tail.parsed)
    seal({
      at,
      event: 'torn-line',
      offset: tail.offset,
      bytes: tail.bytes.length,
      sha256: sha256(tail.bytes),
    });
  const head = key && opts.headFile ? await readAuditHead(opts.headFile) : undefined;
  if (head && (found.seq < head.count || (found.seq === head.count && found.prev !== head.mac)))
    seal({ at, event: 'head-mismatch', head, found: { count: found.seq, mac: found.prev } });
  seal(entry);
  const file = await (opts.openFile ?? openAppend)(opts.file);
  try {
    await file.append(Buffer.from(`${tail ? '\n' : ''}${lines.join('\n')}\n`, 'utf8'));
    await file.sync();
  } finally {
    await file.close();
  }
  if (key && opts.headFile) await writeAuditHead(opts.headFile, { count: end.seq, mac: end.prev });
}

interface Tail {
  offset: number;
  bytes: Buffer;
  parsed: ParsedLine | undefined;
}

/** The end of the chain as written, and bytes after the last newline (a torn or unended line). */
async function readChainEnd(file: string): Promise<{ end: ChainEnd; tail?: Tail }> {
  const start: ChainEnd = { seq: 0, prev: GENESIS, sealed: false };
  const h = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!h) return { end: start };
  try {
    const { size } = await h.stat();
    for (let span = 64 * 1024; ; span *= 4) {
      const from = Math.max(0, size - span);
      const buf = Buffer.alloc(size - from);
      await h.read(buf, 0, buf.length, from);
      const scan = scanTail(buf, from);
      if (!scan) continue;
      const tail = scan.tail ? { tail: scan.tail } : {};
      if (!scan.last) return { end: start, ...tail };
      const { line, parsed } = scan.last;
      // A legacy line has no number: the count of entries takes one full read (once, before sealing).
      const count = parsed.kind === 'sealed' ? parsed.seq : await countEntries(file);
      return { end: endAfter(line, parsed, count), ...tail };
    }
  } finally {
    await h.close();
  }
}

/** The last entry in `buf` (read from `from`), or undefined when more of the file is needed. */
function scanTail(
  buf: Buffer,
  from: number,
): { tail?: Tail; last?: { line: string; parsed: ParsedLine } } | undefined {
  const lastNl = buf.lastIndexOf(10);
  if (lastNl === -1 && from > 0) return undefined;
  const trailing = buf.subarray(lastNl + 1);
  let tail: Tail | undefined;
  if (trailing.length > 0) {
    const text = trailing.toString('utf8');
    tail = { offset: from + lastNl + 1, bytes: trailing, parsed: parseLine(text) };
    if (tail.parsed) return { tail, last: { line: text, parsed: tail.parsed } };
  }
  for (let endIdx = lastNl; endIdx >= 0; ) {
    const prevNl = endIdx === 0 ? -1 : buf.lastIndexOf(10, endIdx - 1);
    if (prevNl === -1 && from > 0) return undefined;
    const text = buf.subarray(prevNl + 1, endIdx).toString('utf8');
    const parsed = parseLine(text);
    if (parsed) return { ...(tail ? { tail } : {}), last: { line: text, parsed } };
    endIdx = prevNl;
  }
  return tail ? { tail } : {};
}

async function countEntries(file: string): Promise<number> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => parseLine(l) !== undefined).length;
}

/** The head as last written, or undefined when there is none yet. */
export async function readAuditHead(headFile: string): Promise<AuditHead | undefined> {
  const text = await readFile(headFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  let h: Partial<AuditHead> | undefined;
  try {
    h = JSON.parse(text) as Partial<AuditHead>;
  } catch {
    h = undefined;
  }
  if (typeof h?.count !== 'number' || typeof h.mac !== 'string')
    throw new GatewayError('LL_AUDIT_HEAD_INVALID', `${headFile} is not an audit head (count and mac)`);
  return { count: h.count, mac: h.mac };
}

/** Atomic (temporary file, fsync, rename), mode 0600. */
async function writeAuditHead(headFile: string, head: AuditHead): Promise<void> {
  await mkdir(dirname(headFile), { recursive: true });
  const tmp = `${headFile}.${process.pid}.tmp`;
  const h = await open(tmp, 'w', 0o600);
  try {
    await h.writeFile(`${JSON.stringify({ ...head, at: new Date().toISOString() })}\n`);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, headFile);
}

/**
 * Checks the log: the legacy SHA-256 chain up to where sealed entries start, every MAC, the entry
 * numbers, and the end against the head. Without `key`, a log with sealed entries reports `needsKey`.
 */
export async function verifyAuditLog(
  file: string,
  opts: { key?: string | Buffer; headFile?: string } = {},
): Promise<VerifyResult> {
  const data = await readFile(file);
  const head = opts.headFile ? await readAuditHead(opts.headFile) : undefined;
  const key = typeof opts.key === 'string' ? Buffer.from(opts.key, 'hex') : opts.key;
  return verifyAuditText(data, key, head);
}
