// The few InfluxDB 1.x calls the benches make, over plain HTTP.
export async function influxQuery(url: string, db: string | undefined, q: string): Promise<unknown[][]> {
  const params = new URLSearchParams({ q, ...(db ? { db } : {}) });
  const res = await fetch(`${url}/query`, { method: 'POST', body: params });
  const body = (await res.json()) as { results?: { series?: { values: unknown[][] }[]; error?: string }[] };
  const r = body.results?.[0];
  if (r?.error) throw new Error(`InfluxDB: ${r.error} (${q})`);
  return r?.series?.[0]?.values ?? [];
}

export async function countPoints(
  url: string,
  db: string,
  measurement: string,
  field: string,
): Promise<number> {
  const rows = await influxQuery(url, db, `SELECT count(${field}) FROM ${measurement}`);
  return Number(rows[0]?.[1] ?? 0);
}

/** Polls the count until it reaches `expected` or stops moving for `quietMs`. */
export async function waitForCount(
  count: () => Promise<number>,
  expected: number,
  opts: { quietMs?: number; maxMs?: number } = {},
): Promise<{ stored: number; seconds: number }> {
  const t0 = performance.now();
  let last = -1;
  let lastChange = t0;
  for (;;) {
    const n = await count().catch(() => last);
    if (n !== last) {
      last = n;
      lastChange = performance.now();
    }
    const now = performance.now();
    if (n >= expected || now - lastChange > (opts.quietMs ?? 10_000) || now - t0 > (opts.maxMs ?? 180_000))
      return { stored: n, seconds: (now - t0) / 1000 };
    await new Promise((r) => setTimeout(r, 250));
  }
}
