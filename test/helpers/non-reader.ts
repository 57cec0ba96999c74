// A raw-socket MQTT client that reads until its SUBACK and then never reads again: the gateway's
// writes to it back up in the kernel and then in the gateway's socket buffer (issue 13 #1).
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { PASSWORD } from './gateway.js';
import { connectPacket } from './raw-mqtt.js';

export async function connectNonReader(
  mqttUrl: string,
  opts: { clientId: string; username: string; filter: string },
): Promise<Socket> {
  const url = new URL(mqttUrl);
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const parser = mqttPacket.parser();
  const subacked = new Promise<void>((resolve, reject) => {
    parser.on('packet', (p) => {
      if (p.cmd === 'connack' && p.returnCode !== 0) reject(new Error(`CONNACK ${p.returnCode}`));
      if (p.cmd === 'suback') resolve();
    });
    socket.once('close', () => reject(new Error('connection closed before SUBACK')));
  });
  const onData = (d: Buffer) => parser.parse(d);
  socket.on('data', onData);
  socket.write(connectPacket(opts.username, PASSWORD, { clientId: opts.clientId, keepalive: 600 }));
  socket.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: opts.filter, qos: 0 }] }),
  );
  await subacked;
  socket.off('data', onData);
  socket.pause();
  return socket;
}

/** A QoS 0 PUBLISH packet, to write on a raw socket. */
export const publishPacket = (topic: string, payload: string) =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
