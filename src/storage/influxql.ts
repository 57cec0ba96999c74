// The one InfluxQL client: the InfluxDB 1.x /query URL, the credentials every read sends, the quoting
// of identifiers and string literals, and the reading of its JSON answers (whole or chunked). Readers
// of the database (the research export, the quality report, `simulate --verify`) go through it, so a
// statement is built, escaped and authenticated the same way everywhere. Read-only: it never writes
// (influx-v1.ts does) and never decides what may be read (query/access.ts does). Credentials travel
// in the Authorization header only, never in the URL, and no error names a password or a token.
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';

/**
 * How a read logs in. `basic`: an InfluxDB 1.x user. `token`: InfluxDB 2.x/3.x through their v1
 * compatibility /query endpoint (`Authorization: Token ...`).
 */
export type InfluxAuth =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'token'; readonly token: string };

export interface InfluxQLTarget {
  /** InfluxDB base URL, without a trailing /query. */
  readonly url: string;
  /** The database (for InfluxDB 2.x: the database of the bucket's DBRP mapping). */
  readonly db: string;
  /** Absent: no credentials (an InfluxDB without authentication). */
  readonly auth?: InfluxAuth;
}

/**
 * A query InfluxDB did not answer with rows: `influxStatus` is its HTTP status (0 when it could not
 * be reached) and `influxMessage` its own error text, for a caller that passes it on (the export's
 * 502). Not `status`: fastify would answer with it as the response's own status. The message names
 * the URL and the user, never a password or a token.
 */
export class InfluxQueryError extends GatewayError {
  readonly influxStatus: number;
  readonly influxMessage: string;

  constructor(
    code: 'LL_INFLUX_AUTH' | 'LL_INFLUX_QUERY' | 'LL_INFLUX_UNAVAILABLE',
    message: string,
    detail: { influxStatus: number; influxMessage: string; cause?: unknown },
  ) {
    super(code, message, detail.cause === undefined ? undefined : { cause: detail.cause });
    this.name = 'InfluxQueryError';
    this.influxStatus = detail.influxStatus;
    this.influxMessage = detail.influxMessage;
  }
}

/**
 * The target every reader of the gateway's data uses. v1: the database `influx.db`, as the user
 * `influx.readUsername` (falling back to the writer's `influx.username`). v2: the bucket's name as
 * the database of its DBRP mapping (InfluxDB 3 and virtual DBRP mappings need nothing more), with
 * `influx.readToken` (falling back to the writer's `influx.token`).
 */
export function influxReadTarget(influx: Config['influx']): InfluxQLTarget {
  if (influx.api === 'v2') {
    const token = influx.readToken || influx.token;
    return { url: influx.url, db: influx.bucket, ...(token ? { auth: { kind: 'token', token } } : {}) };
  }
  const [username, password] = influx.readUsername
    ? [influx.readUsername, influx.readPassword]
    : [influx.username, influx.password];
  return {
    url: influx.url,
    db: influx.db,
    ...(username ? { auth: { kind: 'basic', username, password } } : {}),
  };
}

/** The request headers for a target's credentials. */
export function authHeaders(auth: InfluxAuth | undefined): Record<string, string> {
  if (!auth) return {};
  if (auth.kind === 'token') return { authorization: `Token ${auth.token}` };
  return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
}

/** `InfluxDB at URL (user "reader")`: who asked whom, for a technician; never the secret. */
export function describeTarget(target: InfluxQLTarget): string {
  const who =
    target.auth?.kind === 'basic'
      ? ` (user "${target.auth.username}")`
      : target.auth?.kind === 'token'
        ? ' (with a token)'
        : ' (without credentials)';
  return `InfluxDB at ${target.url}${who}`;
}

/** One series of a result: its column names and rows, time first (epoch milliseconds, or RFC 3339 on request). */
export interface InfluxSeries {
  /** The GROUP BY tags of this series (absent without GROUP BY). */
  readonly tags?: Readonly<Record<string, string>>;
  readonly columns: string[];
  readonly values: unknown[][];
}

interface QueryBody {
  results: { series?: InfluxSeries[]; error?: string }[];
}

/** `"name"`, with `"` and `\` escaped: a measurement, field or tag key in a statement. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `'value'`, with `'` and `\` escaped: a tag value compared in a WHERE clause. */
export function quoteString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/**
 * The /query URL. Times come as epoch milliseconds (a JSON number) by default; `rfc3339` leaves out
 * the epoch parameter, and InfluxDB then gives RFC 3339 strings to the nanosecond, which a JSON
 * number (exact only to 2^53) could not carry.
 */
export function queryUrl(
  target: InfluxQLTarget,
  statement: string,
  chunkSize?: number,
  time: 'ms' | 'rfc3339' = 'ms',
): string {
  const chunked = chunkSize === undefined ? '' : `&chunked=true&chunk_size=${chunkSize}`;
  const epoch = time === 'ms' ? '&epoch=ms' : '';
  return `${target.url}/query?db=${encodeURIComponent(target.db)}${epoch}${chunked}&q=${encodeURIComponent(statement)}`;
}

/** What a technician changes when InfluxDB refuses the read credentials (401) or their rights (403). */
function authHint(target: InfluxQLTarget, status: number): string {
  const db = `"${target.db}"`;
  if (target.auth?.kind === 'token')
    return `check influx.readToken (LIVINGLAB_INFLUX_READ_TOKEN; else influx.token) and that the token may read the bucket mapped to database ${db} (influx v1 dbrp list)`;
  if (target.auth?.kind === 'basic' && status === 403)
    return `give the user read access: GRANT READ ON ${db} TO "${target.auth.username}"`;
  return `check influx.readUsername and influx.readPassword (LIVINGLAB_INFLUX_READ_USERNAME, LIVINGLAB_INFLUX_READ_PASSWORD; else influx.username and influx.password) and that the user may read database ${db}`;
}

/** InfluxDB's own error text of a refused request: its JSON `error`, else the body as it is. */
async function refusalText(res: Response): Promise<string> {
  const text = (await res.text().catch(() => '')).trim();
  try {
    // 1.x answers {"error": ...}; 2.x {"code": ..., "message": ...}.
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = body.error ?? body.message;
    if (typeof error === 'string') return error;
  } catch {
    // not JSON: a proxy's page or plain text
  }
  return text.slice(0, 500) || (res.statusText ?? '');
}

/**
 * The typed error of a refused request or statement (`status` 200: the statement's own error):
 * LL_INFLUX_AUTH for 401/403, else LL_INFLUX_QUERY.
 */
export function refusedQuery(
  target: InfluxQLTarget,
  status: number,
  influxMessage: string,
): InfluxQueryError {
  if (status === 401 || status === 403)
    return new InfluxQueryError(
      'LL_INFLUX_AUTH',
      `${describeTarget(target)} refused the read (HTTP ${status}: ${influxMessage}); ${authHint(target, status)}`,
      { influxStatus: status, influxMessage },
    );
  // 200: the request went through and InfluxDB answered the statement with an error of its own.
  const why = status === 200 ? influxMessage : `HTTP ${status}: ${influxMessage}`;
  return new InfluxQueryError(
    'LL_INFLUX_QUERY',
    `${describeTarget(target)} refused a query on database "${target.db}" (${why})`,
    { influxStatus: status, influxMessage },
  );
}

/** Sends one statement with the target's credentials; a refusal or an unreachable InfluxDB throws. */
async function send(
  target: InfluxQLTarget,
  statement: string,
  chunkSize?: number,
  time: 'ms' | 'rfc3339' = 'ms',
): Promise<Response> {
  let res: Response;
  // A chunked read is an export's bulk: uncompressed, as fetch would otherwise ask for gzip, and
  // influxd compressing and the gateway inflating every chunk cost both of them more CPU than the
  // rows themselves (issue 18, profiled); InfluxDB usually sits next to the gateway.
  const encoding: Record<string, string> = chunkSize === undefined ? {} : { 'accept-encoding': 'identity' };
  try {
    res = await fetch(queryUrl(target, statement, chunkSize, time), {
      headers: { ...authHeaders(target.auth), ...encoding },
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const text = `${(err as Error).message}${cause ? ` (${cause})` : ''}`;
    throw new InfluxQueryError(
      'LL_INFLUX_UNAVAILABLE',
      `${describeTarget(target)} could not be reached: ${text}; is influxd running? (--influx-url)`,
      { influxStatus: 0, influxMessage: text, cause: err },
    );
  }
  if (!res.ok || !res.body) throw refusedQuery(target, res.status, await refusalText(res));
  return res;
}

const toRows = (series: readonly InfluxSeries[]): Record<string, unknown>[] =>
  series.flatMap((s) => s.values.map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))));

/**
 * The rows of the first statement's answer, as objects, and its error when InfluxDB gave one for
 * the statement (an unknown database). A refused request (credentials, HTTP error) or an InfluxDB
 * out of reach rejects with an InfluxQueryError.
 */
export async function queryResult(
  target: InfluxQLTarget,
  statement: string,
): Promise<{ rows: Record<string, unknown>[]; error?: string }> {
  const res = await send(target, statement);
  const result = ((await res.json()) as QueryBody).results[0];
  const rows = toRows(result?.series ?? []);
  return result?.error ? { rows, error: result.error } : { rows };
}

/** The rows of one statement; rejects with an InfluxQueryError carrying InfluxDB's error text. */
export async function queryRows(
  target: InfluxQLTarget,
  statement: string,
): Promise<Record<string, unknown>[]> {
  const { rows, error } = await queryResult(target, statement);
  if (error) throw refusedQuery(target, 200, error);
  return rows;
}

/** The series of one chunked statement as they arrive, so memory holds about one chunk. */
export async function* querySeries(
  target: InfluxQLTarget,
  statement: string,
  chunkSize: number,
  time: 'ms' | 'rfc3339' = 'ms',
): AsyncGenerator<InfluxSeries> {
  const res = await send(target, statement, chunkSize, time);
  try {
    yield* chunkedSeries(target, res);
  } catch (err) {
    if (err instanceof InfluxQueryError || err instanceof SyntaxError) throw err;
    // The connection broke off in the middle of InfluxDB's answer (a proxy, a restart, a network cut).
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const text = `${(err as Error).message}${cause ? ` (${cause})` : ''}`;
    throw new InfluxQueryError(
      'LL_INFLUX_UNAVAILABLE',
      `${describeTarget(target)} broke off its answer to a query on database "${target.db}": ${text}`,
      { influxStatus: 0, influxMessage: `the answer broke off: ${text}`, cause: err },
    );
  }
}

/** The series of a chunked answer, one JSON document per line, as its pieces arrive. */
async function* chunkedSeries(target: InfluxQLTarget, res: Response): AsyncGenerator<InfluxSeries> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    // A chunk's line (hundreds of kB) arrives in many pieces: only the new piece is searched.
    const searched = buffered.length;
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf('\n', searched);
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      if (!line.trim()) continue;
      const result = (JSON.parse(line) as QueryBody).results[0];
      if (result?.error) throw refusedQuery(target, 200, result.error);
      yield* result?.series ?? [];
    }
  }
}

/**
 * Tries the read credentials with a statement that needs READ on the database and reads next to
 * nothing; resolves to InfluxDB's refusal (LL_INFLUX_AUTH, LL_INFLUX_QUERY), or undefined when the
 * read went through, InfluxDB could not be reached (the writer reports that already) or gave no
 * answer within `timeoutMs`.
 */
export async function probeReadAccess(
  target: InfluxQLTarget,
  timeoutMs = 5000,
): Promise<InfluxQueryError | undefined> {
  let timer: NodeJS.Timeout | undefined;
  // An InfluxDB that accepts and never answers must not hold up the start.
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  try {
    await Promise.race([queryRows(target, 'SHOW RETENTION POLICIES'), late]);
    return undefined;
  } catch (err) {
    if (err instanceof InfluxQueryError && err.code !== 'LL_INFLUX_UNAVAILABLE') return err;
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
