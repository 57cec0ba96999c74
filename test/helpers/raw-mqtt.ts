// MQTT packets written on raw sockets, for tests and benchmarks that must do what MQTT.js will not:
// hold a CONNECT half-sent, announce a size they never send, or count the gateway's bytes. It owns
// the byte-level framing; it never keeps a socket open past the call that made it, except as asked.
import { once } from 'node:events';
import { connect } from 'node:net';
import mqttPacket from 'mqtt-packet';

/** The fixed header of a packet of `type` (1 = CONNECT, 3 = PUBLISH…) announcing `remaining` bytes. */
export function fixedHeader(type: number, remaining: number): Buffer {
  const bytes = [type << 4];
  let n = remaining;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** A clean MQTT 3.1.1 CONNECT whose client id is the username, as devices and staff log in. */
export function connectPacket(
  username: string,
  password: string,
  extra: Partial<mqttPacket.IConnectPacket> = {},
) {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: username,
    username,
    password: Buffer.from(password),
    ...extra,
  });
}

/**
 * One login over a raw socket (from `localAddress` when given): sends the CONNECT and waits for the
 * gateway to close the socket; resolves the CONNACK code, or -1 when it closed without one.
 */
export async function rawLogin(opts: {
  port: number;
  username: string;
  password: string;
  localAddress?: string;
}): Promise<number> {
  const { port, localAddress } = opts;
  const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  socket.on('error', () => undefined);
  await Promise.race([once(socket, 'connect'), once(socket, 'close')]);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(connectPacket(opts.username, opts.password));
  await once(socket, 'close');
  const data = Buffer.concat(chunks);
  return data.length >= 4 && data[0] === 0x20 ? (data[3] as number) : -1;
}
