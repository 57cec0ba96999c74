// An HTTP proxy in front of influxd that passes every request on unchanged and records, per
// request, the path, the encoding the client asked for and the one influxd answered with.

import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  readonly path: string;
  readonly acceptEncoding: string | undefined;
  readonly contentEncoding: string | undefined;
}

export async function startRecordingProxy(
  target: string,
): Promise<{ url: string; requests: () => ProxiedRequest[]; stop(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const seen: ProxiedRequest[] = [];
  const server = createServer((req, res) => {
    const upstream = request(
      { host: hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        seen.push({
          path: req.url ?? '',
          acceptEncoding: req.headers['accept-encoding'],
          contentEncoding: answer.headers['content-encoding'],
        });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => [...seen],
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
