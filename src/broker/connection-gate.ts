// What a connection must pass before aedes reads it: the per-address connection rate, the frame
// guard (CONNECT and packet size limits) and the pre-authentication buffer budget (preauth.ts),
// on plain TCP and on TLS alike.
// It never reads a packet itself and never blames anyone in the rejects log before login.
import type { Socket } from 'node:net';
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
  // One cap for every listener: each server's own maxConnections would let TCP and TLS together
  // hold twice mqtt.maxConnections.
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
  // checked before the connection costs a key exchange) and the decrypted TLSSocket once the
  // handshake is done (accept with `admitted`): the frame guard and the pre-authentication budget
  // must count MQTT bytes, which only exist after decryption. The handshake in between is bounded
  // by the listener's handshakeTimeout (= mqtt.connectTimeout) and OpenSSL's record size.
  const accept = (
    socket: Socket,
    describe: () => { clientId?: string; connectionId?: string },
    opts: { admitted?: boolean } = {},
  ) => {
    const remoteAddress = socket.remoteAddress ?? '';
    if (!opts.admitted && !admit(socket)) {
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
      socket.destroy();
    });
    socket.once('close', () => entry.release());
    const conn = guardSocket(socket, config.mqtt.maxPacketSize, (info) => oversize.handle(info, describe), {
      maxConnectBytes: config.mqtt.maxConnectPacketSize,
      onBytes: (n) => entry.add(n),
    });
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
