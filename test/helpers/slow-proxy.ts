// An HTTP proxy in front of influxd that holds every request for `delayMs`: "InfluxDB answering slowly".
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startSlowProxy(
  target: string,
  delayMs: number,
): Promise<{ url: string; requests: () => number; stop(): Promise<void> }> {
  let requests = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      setTimeout(() => {
        fetch(new URL(req.url ?? '/', target), {
          method: req.method,
          headers: { 'content-type': req.headers['content-type'] ?? 'text/plain' },
          ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body: Buffer.concat(chunks) }),
        }).then(
          async (upstream) => {
            res.writeHead(upstream.status, {
              'content-type': upstream.headers.get('content-type') ?? 'text/plain',
            });
            res.end(Buffer.from(await upstream.arrayBuffer()));
          },
          () => {
            res.writeHead(502);
            res.end();
          },
        );
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
