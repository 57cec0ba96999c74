// The one InfluxQL client: the InfluxDB 1.x /query URL, the quoting of identifiers and string
// literals, and the reading of its JSON answers (whole or chunked). Readers of the database (the
// research export, the quality report, `simulate --verify`) go through it, so a statement is built
// and escaped the same way everywhere. Read-only: it never writes (influx-v1.ts does) and never
// decides what may be read (query/access.ts does).

export interface InfluxQLTarget {
  /** InfluxDB 1.x base URL, without a trailing /query. */
  readonly url: string;
  readonly db: string;
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

const toRows = (series: readonly InfluxSeries[]): Record<string, unknown>[] =>
  series.flatMap((s) => s.values.map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))));

/** The rows of the first statement's answer, as objects, and its error when InfluxDB gave one. */
export async function queryResult(
  target: InfluxQLTarget,
  statement: string,
): Promise<{ rows: Record<string, unknown>[]; error?: string }> {
  const res = await fetch(queryUrl(target, statement));
  const result = ((await res.json()) as QueryBody).results[0];
  const rows = toRows(result?.series ?? []);
  return result?.error ? { rows, error: result.error } : { rows };
}

/** The rows of one statement; rejects with InfluxDB's error text when it answered one. */
export async function queryRows(
  target: InfluxQLTarget,
  statement: string,
): Promise<Record<string, unknown>[]> {
  const { rows, error } = await queryResult(target, statement);
  if (error) throw new Error(error);
  return rows;
}

/** InfluxDB's own words for a refused query (its JSON `error`), else the HTTP status. */
async function refusal(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof error === 'string') return error;
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  return `InfluxDB answered HTTP ${res.status}`;
}

/** The series of one chunked statement as they arrive, so memory holds about one chunk. */
export async function* querySeries(
  target: InfluxQLTarget,
  statement: string,
  chunkSize: number,
  time: 'ms' | 'rfc3339' = 'ms',
): AsyncGenerator<InfluxSeries> {
  const res = await fetch(queryUrl(target, statement, chunkSize, time));
  if (!res.ok || !res.body) throw new Error(await refusal(res));
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      if (!line.trim()) continue;
      const result = (JSON.parse(line) as QueryBody).results[0];
      if (result?.error) throw new Error(result.error);
      yield* result?.series ?? [];
    }
  }
}
