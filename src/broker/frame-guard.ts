// Reads MQTT fixed headers off the raw byte stream before aedes sees them, and closes a connection
// whose next packet declares a body larger than the limit. aedes 1.2 has no maximum packet size
// and mqtt-packet buffers the whole declared body (aedes#831): one 200 MB PUBLISH costs ~190 MiB.
// Never buffers: it only counts bytes.

import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** Incremental scanner of MQTT fixed headers. `feed` returns the offending size, or undefined. */
export function createFrameScanner(maxPacketBytes: number) {
  // state: 0 = expecting the type byte, 1 = reading the remaining length, 2 = skipping the body
  let state = 0;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let skip = 0;
  let type = 0;
  return {
    /** Returns the declared size of the first packet over the limit in this chunk, if any. */
    feed(chunk: Buffer): { declared: number; type: number } | undefined {
      let i = 0;
      while (i < chunk.length) {
        if (state === 2) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          if (skip === 0) state = 0;
          continue;
        }
        const byte = chunk[i++] as number;
        if (state === 0) {
          type = byte >> 4;
          state = 1;
          length = 0;
          multiplier = 1;
          lengthBytes = 0;
          continue;
        }
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        lengthBytes++;
        if (byte & 0x80) {
          // [MQTT-2.2.3] at most four bytes; a fifth is malformed: treat as too large.
          if (lengthBytes >= 4) return { declared: Number.POSITIVE_INFINITY, type };
          continue;
        }
        if (length + 1 + lengthBytes > maxPacketBytes) return { declared: length + 1 + lengthBytes, type };
        skip = length;
        state = skip === 0 ? 0 : 2;
      }
      return undefined;
    },
  };
}

export interface OversizeInfo {
  readonly declared: number;
  readonly packetType: number;
  readonly remoteAddress: string | undefined;
}

/**
 * Wraps a socket in a Duplex that aedes reads from. Bytes pass through unchanged until a packet
 * declares more than `maxPacketBytes`; then `onOversize` is told and the socket is destroyed
 * before any of that body is buffered.
 */
export function guardConnection(
  socket: Socket,
  maxPacketBytes: number,
  onOversize: (info: OversizeInfo) => void,
): Duplex {
  const scanner = createFrameScanner(maxPacketBytes);
  const wrapped = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.destroyed) return cb();
      socket.write(chunk, (err) => cb(err ?? null));
    },
    // mqtt-packet writes a PUBACK as three corked pieces (header, length, id); without writev they
    // would reach the socket as three writes, and with Nagle off as three syscalls and TCP segments.
    writev(chunks, cb) {
      if (socket.destroyed) return cb();
      const data =
        chunks.length === 1
          ? (chunks[0]?.chunk as Buffer)
          : Buffer.concat(chunks.map((c) => c.chunk as Buffer));
      socket.write(data, (err) => cb(err ?? null));
    },
    final(cb) {
      socket.end(() => cb());
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    const over = scanner.feed(chunk);
    if (over) {
      onOversize({ declared: over.declared, packetType: over.type, remoteAddress: socket.remoteAddress });
      socket.destroy();
      wrapped.destroy();
      return;
    }
    if (!wrapped.push(chunk)) socket.pause();
  });
  socket.on('end', () => wrapped.push(null));
  socket.on('error', (err) => wrapped.destroy(err));
  socket.on('close', () => wrapped.destroy());
  return wrapped;
}
