// When the broker skips a delivery (issue 13 #1): a write that would pass the socket's high-water
// mark makes aedes wait for 'drain' while it holds one of mqemitter's shared slots, so such a
// delivery is not made; an idle socket may still take one message larger than the mark.
import type { Client } from 'aedes';
import { describe, expect, it } from 'vitest';
import { isBackedUp } from '../../src/broker/backlog.js';

const client = (conn: {
  writableNeedDrain: boolean;
  writableLength: number;
  writableHighWaterMark: number;
}) => ({ conn }) as unknown as Client;

describe('isBackedUp', () => {
  it.each([
    ['a socket waiting for drain', { writableNeedDrain: true, writableLength: 20_000 }, 10, true],
    [
      'a message that would pass the mark behind buffered bytes',
      { writableNeedDrain: false, writableLength: 10_000 },
      8_000,
      true,
    ],
    [
      'a message that would reach the mark exactly',
      { writableNeedDrain: false, writableLength: 8_384 },
      8_000,
      true,
    ],
    [
      'a small message behind a few buffered bytes',
      { writableNeedDrain: false, writableLength: 1_000 },
      1_000,
      false,
    ],
    ['a large message on an idle socket', { writableNeedDrain: false, writableLength: 0 }, 200_000, false],
  ])('%s', (_name, state, bytes, expected) => {
    expect(isBackedUp(client({ ...state, writableHighWaterMark: 16_384 }), bytes)).toBe(expected);
  });
});
