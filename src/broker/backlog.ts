// Whether a connection can take another delivery now. aedes makes a delivery to a socket past its
// high-water mark wait for 'drain' while holding one of mqemitter's shared concurrency slots, so a
// delivery that would pass it is not made at all (dropped and counted). Nothing here writes.
import type { Socket } from 'node:net';
import type { Client } from 'aedes';

/** Bytes a PUBLISH adds to a socket besides its topic and payload (fixed header, lengths, id). */
export const PUBLISH_OVERHEAD = 9;

/**
 * True while a client's socket cannot take `bytes` more without passing its high-water mark. A
 * write past the mark makes aedes wait for 'drain' (up to its drainTimeout) while holding one of
 * mqemitter's shared concurrency slots, so a delivery that would pass it is not made at all. Only
 * an idle socket (nothing buffered) may take one message larger than the mark.
 */
export function isBackedUp(client: Client, bytes = 0): boolean {
  const conn = client.conn as Client['conn'] & Partial<Pick<Socket, 'writableHighWaterMark'>>;
  if (conn.writableNeedDrain === true) return true;
  const buffered = conn.writableLength ?? 0;
  return buffered > 0 && buffered + bytes >= (conn.writableHighWaterMark ?? 16_384);
}
