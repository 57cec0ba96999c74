// Whether a client certificate may log a device in without a password: the device's certificate
// rule (types.ts CertificateRule) against what the TLS handshake established. Pure: it never reads
// a socket; the broker hands it the verified facts. Default deny: no rule, no verified chain, a
// name or fingerprint that differs, or a disabled device is refused.
import type { Decision } from './acl.js';
import type { CertificateRule, Device } from './types.js';

/** A SHA-256 fingerprint as Node and OpenSSL print it: 32 hex pairs separated by colons. */
export const FINGERPRINT_PATTERN = '^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$';

/** What the broker knows of a client certificate after the handshake. */
export interface PeerCertificate {
  /** The chain verified against tls.ca and the certificate valid now (Node's socket.authorized). */
  readonly verified: boolean;
  /** Why not, as OpenSSL says it (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...). */
  readonly verifyError?: string;
  readonly fingerprint256: string;
  readonly commonNames: readonly string[];
  /** Subject alternative name values (DNS, URI, email...), without their type prefix. */
  readonly altNames: readonly string[];
}

/** Parses a rule as a technician types it: a fingerprint, or `lab-ca`. */
export function parseCertificateRule(text: string): CertificateRule | undefined {
  if (text === 'lab-ca') return { issuer: 'lab-ca' };
  if (new RegExp(FINGERPRINT_PATTERN).test(text)) return { fingerprint256: text.toUpperCase() };
  return undefined;
}

/** Node's subjectaltname string ("DNS:a, URI:b, IP Address:1.2.3.4") as plain values. */
export function altNamesOf(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(', ')
    .map((entry) => entry.slice(entry.indexOf(':') + 1).replace(/^"(.*)"$/, '$1'))
    .filter((v) => v !== '');
}

const deny = (reason: string): Decision => ({ allow: false, reason });

/** May this verified (or not) certificate log in as `device`? */
export function matchCertificate(device: Device, peer: PeerCertificate): Decision {
  if (!peer.verified)
    return deny(
      `client certificate not accepted: ${peer.verifyError ?? 'not issued by the lab CA (tls.ca)'}`,
    );
  if (!device.enabled) return deny(`device ${device.id} is disabled`);
  const rule = device.certificate;
  if (!rule) return deny(`device ${device.id} has no certificate rule; it logs in with its password`);
  if ('fingerprint256' in rule) {
    return peer.fingerprint256.toUpperCase() === rule.fingerprint256.toUpperCase()
      ? { allow: true }
      : deny(`client certificate ${peer.fingerprint256} is not the one registered for device ${device.id}`);
  }
  const names = [...peer.commonNames, ...peer.altNames];
  return names.includes(device.id)
    ? { allow: true }
    : deny(`client certificate names ${names.join(', ') || 'nobody'}, not device ${device.id}`);
}
