// HTTPS for the HTTP API: the server fastify runs on when TLS is configured, with the gateway's
// certificate put in place before it listens and swapped in place on renewal (connections stay
// open), and the security headers of @fastify/helmet on every answer. It never serves a request
// before a certificate is in place: listening waits for `use`.
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import helmet from '@fastify/helmet';
import type { FastifyInstance, FastifyServerFactory } from 'fastify';
import type { Config } from '../config/schema.js';
import { isTlsConfigured, type TlsMaterial } from '../tls/material.js';

// HSTS for a year (browsers remember it; 180 days is the least scanners accept). Not for
// subdomains: the gateway's host name is often a lab's, whose other hosts are not ours to decide.
const HSTS_MAX_AGE_S = 365 * 24 * 3600;

export interface HttpsServing {
  /** For Fastify({ serverFactory }): the API's server, an HTTPS one. */
  readonly serverFactory: FastifyServerFactory;
  /** Puts the certificate in place (before listening) and follows its renewals. */
  use(material: TlsMaterial): void;
}

export function createHttpsServing(opts: { handshakeTimeoutMs: number }): HttpsServing {
  let server: HttpsServer | undefined;
  return {
    serverFactory: (handler) => {
      // The certificate is read when the gateway starts, after fastify is built: set by `use`.
      server = createHttpsServer({ handshakeTimeout: opts.handshakeTimeoutMs }, handler);
      // A plain-HTTP request or garbage on the HTTPS port: close that connection only.
      server.on('tlsClientError', (_err, socket) => socket.destroy());
      return server;
    },
    use(material) {
      const s = server;
      if (!s) return;
      s.setSecureContext(material.options());
      material.onReload(() => s.setSecureContext(material.options()));
    },
  };
}

/**
 * HTTPS for the API when TLS is configured, unless http.tls is 'off' (a TLS-terminating proxy on
 * this host serves it instead: an explicit choice, never a fallback).
 */
export function httpsServingFor(config: Config): HttpsServing | undefined {
  if (!isTlsConfigured(config) || config.http.tls === 'off') return undefined;
  return createHttpsServing({ handshakeTimeoutMs: config.mqtt.connectTimeoutMs });
}

/** HSTS and the usual security headers (nosniff, frame and referrer policies…) on every answer. */
export function registerSecurityHeaders(app: FastifyInstance): void {
  void app.register(helmet, {
    hsts: { maxAge: HSTS_MAX_AGE_S, includeSubDomains: false },
    // The API serves JSON and downloads, no pages: nothing may be loaded or framed from it.
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  });
}
