// What a connection must pass before aedes reads it: the per-address connection rate, the frame
// guard (CONNECT and packet size limits) and the pre-authentication buffer budget (preauth.ts).
// One path for every transport: a TCP or TLS socket, or the stream of a WebSocket over one.
// It never reads a packet itself and never blames anyone in the rejects log before login.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client } from 'aedes';
import type { Config } from '../config/schema.js';
import type { OversizeReport } from '../ingest/source.js';
import type { Logger } from '../log.js';
import { guardSocket, type OversizeInfo } from './frame-guard.js';
import { createConnectRateLimiter, createPreAuthBudget, type PreAuthEntry } from './preauth.js';

export interface GateDeps {
  config: Config;
  log: Logger;
  /** Told of each logged-in connection closed for a packet over the limit. */
  onOversize: (report: OversizeReport) => void;
}

export type ConnectionGate = ReturnType<typeof createConnectionGate>;

/** One client connection as a listener hands it over. */
export interface Connection {
  /** What aedes reads MQTT from: the socket itself, or a WebSocket's message stream over it. */
  readonly stream: Duplex & { readonly remoteAddress?: string | undefined };
  /** The transport socket: the per-address limits use its address, never a forwarded header. */
  readonly socket: Socket;
}

// ws 8 names a message over maxPayload so; the frame never reaches the frame guard.
const WS_MESSAGE_TOO_LARGE = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';

// Under attack these happen thousands of times a second: one warning a minute each, counts in /metrics.
function createOccasionalWarner(log: Logger) {
  const lastWarned = new Map<string, number>();
  return (what: string, fields: Record<string, unknown>) => {
    const at = lastWarned.get(what) ?? 0;
    if (Date.now() - at < 60_000) return;
    lastWarned.set(what, Date.now());
    log.warn(fields, what);
  };
}

/** Packets over their limit: logged and told for a client that logged in, counted for a CONNECT. */
function createOversizeHandler(deps: GateDeps, warnSometimes: ReturnType<typeof createOccasionalWarner>) {
  let connectsRefused = 0;
  return {
    get connectsRefused() {
      return connectsRefused;
    },
    handle(info: OversizeInfo, describe: () => { clientId?: string; connectionId?: string }) {
      // Before login there is no device to tell and nobody to blame in the rejects log: an anonymous
      // flood must not fill the disk or the log. Counted in /metrics instead.
      if (info.packetType === 1) {
        connectsRefused++;
        warnSometimes('CONNECT larger than mqtt.maxConnectPacketSize; connection closed', {
          remoteAddress: info.remoteAddress,
          declaredBytes: info.declared,
          limit: info.limit,
          closedSoFar: connectsRefused,
        });
        return;
      }
      const { clientId, connectionId } = describe();
      deps.log.warn(
        { clientId, connectionId, declaredBytes: info.declared, limit: info.limit },
        'packet larger than the maximum packet size; connection closed',
      );
      deps.onOversize({ clientId, declared: info.declared, limit: info.limit });
    },
  };
}

/** Whether a new connection may open at all: the connection cap and the per-address rate. */
function createAdmission(config: Config, warnSometimes: ReturnType<typeof createOccasionalWarner>) {
  const rateLimiter = createConnectRateLimiter({
    ratePerSecond: config.mqtt.connectRate,
    burst: config.mqtt.connectBurst,
  });
  // One cap for every listener: each server's own maxConnections would let TCP, TLS and the
  // WebSocket listeners together hold several times mqtt.maxConnections.
  let open = 0;
  let overCap = 0;
  /** The connection cap and the per-address rate: false means close this connection. */
  const admit = (socket: Socket): boolean => {
    if (open >= config.mqtt.maxConnections) {
      overCap++;
      warnSometimes('new connections over mqtt.maxConnections refused', { open, refusedSoFar: overCap });
      return false;
    }
    if (!rateLimiter.take(socket.remoteAddress ?? '')) {
      warnSometimes('new connections over the per-address rate refused (mqtt.connectRate)', {
        remoteAddress: socket.remoteAddress,
        refusedSoFar: rateLimiter.refused,
      });
      return false;
    }
    open++;
    socket.once('close', () => open--);
    return true;
  };
  return { admit, overCap: () => overCap, rateLimited: () => rateLimiter.refused };
}

/** TLS handshakes that failed or timed out (garbage, plain MQTT on the TLS port, half-open). */
function createHandshakeCounter(warnSometimes: ReturnType<typeof createOccasionalWarner>) {
  let failed = 0;
  return {
    count: () => failed,
    /** Node has already closed the connection; this only counts and warns now and then. */
    failed: (err: Error, socket: Socket) => {
      failed++;
      warnSometimes('TLS handshakes failed or timed out; those connections were closed', {
        remoteAddress: socket.remoteAddress,
        error: err.message,
        closedSoFar: failed,
      });
    },
  };
}

/**
 * What a WebSocket adds to the gate: its wire bytes count before login (ws holds an unfinished
 * message where the frame guard cannot see it), and a message over ws's maxPayload, refused by ws
 * at its frame header, is reported as an over-size packet, as the frame guard reports one.
 */
function watchWebSocket(
  { stream, socket }: Connection,
  entry: PreAuthEntry,
  limit: number,
  onOversize: (info: OversizeInfo) => void,
): void {
  let loggedIn = false;
  const release = entry.release;
  entry.release = () => {
    loggedIn = true;
    release();
  };
  socket.on('data', (chunk: Buffer) => entry.add(chunk.length));
  stream.once('error', (err: Error & { code?: string }) => {
    if (err.code !== WS_MESSAGE_TOO_LARGE) return;
    // The size is not known (ws stops at the frame header): Infinity, as for a malformed length.
    // Before login it counts as an over-size CONNECT: nobody to tell, nobody to blame.
    const packetType = loggedIn ? 0 : 1;
    const remoteAddress = socket.remoteAddress;
    onOversize({ declared: Number.POSITIVE_INFINITY, packetType, limit, remoteAddress });
  });
}

/**
 * What a connection must pass before aedes reads it: the per-address connection rate, the frame
 * guard (CONNECT and packet size limits), and the pre-authentication buffer budget until it logs in.
 */
export function createConnectionGate(deps: GateDeps) {
  const { config } = deps;
  const budget = createPreAuthBudget({ budgetBytes: config.mqtt.preAuthBufferBudget });
  const warnSometimes = createOccasionalWarner(deps.log);
  const oversize = createOversizeHandler(deps, warnSometimes);
  const handshakes = createHandshakeCounter(warnSometimes);

  const admission = createAdmission(config, warnSometimes);
  const { admit } = admission;

  // With TLS the gate sees a connection twice: the raw socket when it arrives (admit: the rate is
  // checked before the connection costs a key exchange) and the decrypted stream once the
  // handshake is done (accept with `admitted`): the frame guard and the pre-authentication budget
  // must count MQTT bytes, which only exist after decryption. The handshake in between is bounded
  // by the listener's handshakeTimeout (= mqtt.connectTimeout) and OpenSSL's record size.
  const accept = (
    connection: Connection,
    describe: () => { clientId?: string; connectionId?: string },
    opts: { admitted?: boolean } = {},
  ) => {
    const { stream, socket } = connection;
    const remoteAddress = socket.remoteAddress ?? '';
    if (!opts.admitted && !admit(socket)) {
      stream.destroy();
      socket.destroy();
      return undefined;
    }
    // PUBACKs are tiny: without this, Nagle + delayed ACK add ~40 ms to every QoS 1 round trip.
    socket.setNoDelay(true);
    const entry = budget.track(() => {
      warnSometimes('connections closed before login: pre-authentication buffer budget exceeded', {
        remoteAddress,
        budgetBytes: config.mqtt.preAuthBufferBudget,
        closedSoFar: budget.closed,
      });
      stream.destroy();
      socket.destroy();
    });
    socket.once('close', () => entry.release());
    const onOversize = (info: OversizeInfo) => oversize.handle(info, describe);
    const conn = guardSocket(stream, config.mqtt.maxPacketSize, onOversize, {
      maxConnectBytes: config.mqtt.maxConnectPacketSize,
      // A WebSocket buffers a whole message before its stream has any of it: count the bytes on
      // the wire (already flowing, ws reads them) so unfinished messages cost the budget too.
      ...(stream === socket ? { onBytes: (n: number) => entry.add(n) } : {}),
    });
    if (stream !== socket) watchWebSocket(connection, entry, config.mqtt.maxPacketSize, onOversize);
    return { conn, entry };
  };

  const preAuth = new WeakMap<Client, PreAuthEntry>();
  return {
    admit,
    accept,
    handshakeFailed: handshakes.failed,
    track: (client: Client, entry: PreAuthEntry) => preAuth.set(client, entry),
    /** Logged in: what it buffered no longer counts against the pre-authentication budget. */
    loggedIn: (client: Client) => preAuth.get(client)?.release(),
    get preAuthBytes() {
      return budget.bufferedBytes;
    },
    refused: () => ({
      'rate-limit': admission.rateLimited(),
      'preauth-budget': budget.closed,
      'connect-too-large': oversize.connectsRefused,
      'tls-handshake': handshakes.count(),
      'max-connections': admission.overCap(),
    }),
  };
}
