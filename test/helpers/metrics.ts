// Reading a gateway's Prometheus /metrics from tests and benchmarks. It owns finding one series in
// the text format; it never decides what a missing series means (callers choose 0, NaN or undefined).

/** The /metrics text of the gateway whose ops listener listens on `opsPort` on loopback. */
export async function scrapeMetrics(opsPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
}

/** A series' value in a /metrics text (`name` or `name{labels}` exactly as printed); undefined when absent. */
export function metricIn(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** One series read from the gateway's /metrics now; undefined when absent. */
export async function readMetric(opsPort: number, series: string): Promise<number | undefined> {
  return metricIn(await scrapeMetrics(opsPort), series);
}
