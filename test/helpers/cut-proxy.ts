// A TCP proxy in front of influxd that breaks any connection once it has carried `limit` bytes
// back to the client: "InfluxDB went away in the middle of a query".

import type { AddressInfo } from 'node:net';
import { createConnection, createServer, type Socket } from 'node:net';

export async function startCutProxy(
  target: string,
  limit: number,
): Promise<{ url: string; cuts: () => number; stop(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let cuts = 0;
  const server = createServer((client) => {
    const upstream = createConnection({ host: hostname, port: Number(port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    let carried = 0;
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      carried += chunk.length;
      if (carried > limit) {
        cuts++;
        client.destroy();
        upstream.destroy();
      } else client.write(chunk);
    });
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cuts: () => cuts,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
