// Reads MQTT fixed headers off the raw byte stream before aedes sees them, and closes a connection
// whose next packet declares a body larger than the limit. aedes 1.2 has no maximum packet size
// and mqtt-packet buffers the whole declared body (aedes#831): one 200 MB PUBLISH costs ~190 MiB.
// A CONNECT has its own, much smaller limit: it arrives before any credential is checked, so
// without one every anonymous socket could make mqtt-packet hold up to maxPacketSize.
// Never buffers: it only counts the bytes aedes reads.

import type { Duplex } from 'node:stream';

const CONNECT = 1;

/** Incremental scanner of MQTT fixed headers. `feed` returns the offending size, or undefined. */
export function createFrameScanner(maxPacketBytes: number, maxConnectBytes = maxPacketBytes) {
  // state: 0 = expecting the type byte, 1 = reading the remaining length, 2 = skipping the body
  let state = 0;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let skip = 0;
  let type = 0;
  return {
    /** Returns the declared size of the first packet over the limit in this chunk, if any. */
    feed(chunk: Buffer): { declared: number; type: number; limit: number } | undefined {
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
          if (lengthBytes >= 4) return { declared: Number.POSITIVE_INFINITY, type, limit: maxPacketBytes };
          continue;
        }
        const limit = type === CONNECT ? Math.min(maxConnectBytes, maxPacketBytes) : maxPacketBytes;
        if (length + 1 + lengthBytes > limit) return { declared: length + 1 + lengthBytes, type, limit };
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
  /** The limit it broke: maxPacketBytes, or maxConnectBytes for a CONNECT. */
  readonly limit: number;
  readonly remoteAddress: string | undefined;
}

export interface GuardOptions {
  /** Limit for CONNECT packets (default: maxPacketBytes). */
  maxConnectBytes?: number;
  /** Told of every chunk handed to aedes, before it is parsed (pre-authentication accounting). */
  onBytes?: (bytes: number) => void;
}

/**
 * Guards a socket that aedes reads from. aedes pulls bytes with `read(null)` on 'readable' (never
 * in flowing mode), so every byte it gets passes the scanner first; a packet declaring more than
 * `maxPacketBytes` makes `onOversize` be told and the socket be destroyed before mqtt-packet sees
 * any of it. Unread bytes wait in the socket, which stops reading at its high-water mark.
 * The socket itself is handed to aedes: no second stream per connection, and the PUBACK that
 * mqtt-packet writes as three corked pieces leaves as one writev.
 */
export function guardSocket<S extends Duplex & { readonly remoteAddress?: string | undefined }>(
  socket: S,
  maxPacketBytes: number,
  onOversize: (info: OversizeInfo) => void,
  opts: GuardOptions = {},
): S {
  const scanner = createFrameScanner(maxPacketBytes, opts.maxConnectBytes);
  const read = socket.read;
  let refused = false;
  socket.read = function guardedRead(this: S, size?: number) {
    if (refused) return null;
    const chunk = read.call(this, size) as Buffer | null;
    if (chunk === null || typeof chunk === 'string') return chunk;
    const over = scanner.feed(chunk);
    if (!over) {
      opts.onBytes?.(chunk.length);
      return chunk;
    }
    refused = true;
    onOversize({
      declared: over.declared,
      packetType: over.type,
      limit: over.limit,
      remoteAddress: socket.remoteAddress,
    });
    socket.destroy();
    return null;
  };
  return socket;
}
