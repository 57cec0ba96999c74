// Login with a client certificate instead of a password (mutual TLS). It reads what the TLS
// handshake verified off the client's socket and asks registry/certificate-rule.ts whether that
// certificate may log the device in. It never decides on a password login and never checks a
// chain itself: Node verified it against tls.ca during the handshake (socket.authorized).
import { TLSSocket } from 'node:tls';
import type { Client } from 'aedes';
import { canConnect, type Decision, type Identity } from '../registry/acl.js';
import { altNamesOf, matchCertificate, type PeerCertificate } from '../registry/certificate-rule.js';
import type { RegistrySnapshot } from '../registry/registry.js';

/** The client certificate presented on this connection; undefined on plain TCP or without one. */
export function peerCertificateOf(client: Client): PeerCertificate | undefined {
  const conn = (client as unknown as { conn?: unknown }).conn;
  if (!(conn instanceof TLSSocket)) return undefined;
  const cert = conn.getPeerCertificate();
  // An empty object when the client sent no certificate.
  if (!cert?.fingerprint256) return undefined;
  const cn = cert.subject?.CN;
  const error = conn.authorizationError;
  return {
    verified: conn.authorized,
    ...(error ? { verifyError: String(error) } : {}),
    fingerprint256: cert.fingerprint256,
    commonNames: cn === undefined ? [] : Array.isArray(cn) ? cn : [cn],
    altNames: altNamesOf(cert.subjectaltname),
  };
}

/**
 * The identity a certificate logs in, or why not. The device is the client id: the username may be
 * left out, and when given it must be the client id too, so client id = username = device id holds
 * as for passwords. `clientId: true` marks a refusal for the client id alone (CONNACK 2).
 */
export function certificateLogin(
  snapshot: RegistrySnapshot,
  clientId: string,
  username: string | undefined,
  peer: PeerCertificate,
): { allow: true; identity: Identity } | (Decision & { allow: false; clientId?: true }) {
  if (username !== undefined && username !== clientId)
    return {
      allow: false,
      reason: `with a client certificate, the username must be left out or equal the client id "${clientId}"`,
      clientId: true,
    };
  const device = snapshot.devices.get(clientId);
  if (!device) {
    const name = peer.commonNames[0] ?? peer.fingerprint256;
    return { allow: false, reason: `client id "${clientId}" is no registered device (certificate ${name})` };
  }
  const identity: Identity = { kind: 'device', id: device.id, device };
  const connect = canConnect(identity, clientId);
  if (!connect.allow) return connect;
  const match = matchCertificate(device, peer);
  return match.allow ? { allow: true, identity } : match;
}
