// The frame guard checks what aedes reads off the socket; what aedes writes as one corked packet
// must leave as one write (one syscall, one TCP segment with Nagle off).
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { guardSocket, type OversizeInfo } from '../../src/broker/frame-guard.js';

/** Waits for `probe` to hold, polling, and fails after a deadline instead of sleeping a fixed time. */
const until = async (probe: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

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

describe('frame guard', () => {
  it('lets a corked PUBACK leave the socket as one writev', async () => {
    const { server, client } = await socketPair();
    const guarded = guardSocket(server, 1024, () => undefined) as Socket & {
      _write: (...a: unknown[]) => void;
      _writev: (...a: unknown[]) => void;
    };
    const calls: string[] = [];
    const write = guarded._write.bind(guarded);
    const writev = guarded._writev.bind(guarded);
    guarded._write = (...a: unknown[]) => {
      calls.push('write');
      write(...a);
    };
    guarded._writev = (...a: unknown[]) => {
      calls.push(`writev of ${(a[0] as unknown[]).length}`);
      writev(...a);
    };
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    // mqtt-packet corks the stream and writes header, length and message id separately.
    mqttPacket.writeToStream({ cmd: 'puback', messageId: 7 }, guarded);
    await until(() => Buffer.concat(received).length >= 4);
    expect(calls).toEqual(['writev of 3']);
    expect(Buffer.concat(received)).toEqual(Buffer.from([0x40, 0x02, 0x00, 0x07]));
  });

  it('passes packets within the limit and closes the socket at the header of one over it', async () => {
    const { server, client } = await socketPair();
    const refused: OversizeInfo[] = [];
    const guarded = guardSocket(server, 1024, (info) => refused.push(info));
    const got: Buffer[] = [];
    // Read the way aedes does: read(null), i.e. read(), on 'readable'.
    guarded.on('readable', () => {
      for (let b = guarded.read(); b; b = guarded.read()) got.push(b as Buffer);
    });
    const small = mqttPacket.generate({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.alloc(100),
      qos: 0,
      dup: false,
      retain: false,
    });
    client.write(small);
    await until(() => Buffer.concat(got).length >= small.length);
    expect(Buffer.concat(got)).toEqual(small);
    const closed = once(guarded, 'close');
    // The header of a 2,000-byte PUBLISH and the first bytes of its body.
    client.write(Buffer.concat([Buffer.from([0x30, 0xd0, 0x0f]), Buffer.alloc(500)]));
    await closed;
    expect(refused).toEqual([{ declared: 2003, packetType: 3, limit: 1024, remoteAddress: '127.0.0.1' }]);
    expect(Buffer.concat(got)).toEqual(small);
  });
});
