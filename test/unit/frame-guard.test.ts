// The frame guard sits between aedes and the socket: what aedes writes as one corked packet must
// reach the socket as one write (one syscall, one TCP segment with Nagle off).
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { guardConnection } from '../../src/broker/frame-guard.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function socketPair(): Promise<{ server: Socket; client: Socket }> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const address = srv.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  const [server] = await accepted;
  closers.push(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  return { server, client };
}

describe('frame guard writes', () => {
  it('passes a corked PUBACK to the socket as a single write', async () => {
    const { server, client } = await socketPair();
    const writes: number[] = [];
    const write = server.write.bind(server);
    server.write = ((chunk: Buffer, ...rest: never[]) => {
      writes.push(chunk.length);
      return write(chunk, ...rest);
    }) as typeof server.write;
    const wrapped = guardConnection(server, 1024, () => undefined);
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    // mqtt-packet corks the stream and writes header, length and message id separately.
    mqttPacket.writeToStream({ cmd: 'puback', messageId: 7 }, wrapped);
    await new Promise((r) => setTimeout(r, 50));
    expect(writes).toEqual([4]);
    expect(Buffer.concat(received)).toEqual(Buffer.from([0x40, 0x02, 0x00, 0x07]));
  });
});
