// Creates the lab's X.509 material: a CA, server certificates for given host names and addresses,
// and device certificates whose CN is the device id. PEM in, PEM out; it never writes files (the
// CLI does, mode 0600). Built on @peculiar/x509 (pure JS on WebCrypto, maintained): it runs in a
// slim container without the openssl binary, and needs reflect-metadata loaded before it.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto);

/** A certificate and its private key, both PEM (the key PKCS#8). */
export interface CertAndKey {
  readonly cert: string;
  readonly key: string;
}

export interface Validity {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

// ECDSA P-256: small keys, fast handshakes on small devices, supported by every TLS stack we meet.
const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

const validity = (v: Validity, days: number) => {
  // An hour back: a device whose clock runs a little slow still accepts a fresh certificate.
  const notBefore = v.notBefore ?? new Date(Date.now() - 3_600_000);
  return { notBefore, notAfter: v.notAfter ?? new Date(notBefore.getTime() + days * DAY_MS) };
};

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']);
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Characters allowed in our own name attributes: nothing that would need escaping in a DN. */
const safeName = (s: string) => s.replace(/[^A-Za-z0-9 ._-]/g, '-');

/** A new self-signed lab CA (10 years by default). */
export async function createCa(opts: { name?: string } & Validity = {}): Promise<CertAndKey> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${safeName(opts.name ?? 'Living Lab CA')}`,
    keys,
    signingAlgorithm: SIGN_ALG,
    ...validity(opts, 3650),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

async function loadCa(ca: CertAndKey) {
  const cert = new x509.X509Certificate(ca.cert);
  const der = x509.PemConverter.decodeFirst(ca.key);
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALG, false, ['sign']);
  return { cert, signingKey };
}

async function issue(
  ca: CertAndKey,
  subject: string,
  usage: x509.ExtendedKeyUsage,
  names: x509.JsonGeneralNames,
  v: Validity,
  days: number,
): Promise<CertAndKey> {
  const issuer = await loadCa(ca);
  const keys = await newKeys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([usage]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: issuer.cert.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.signingKey,
    signingAlgorithm: SIGN_ALG,
    ...validity(v, days),
    extensions,
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A server certificate (2 years by default) for host names and IP addresses, all in its SAN. */
export async function issueServerCert(
  ca: CertAndKey,
  hosts: readonly string[],
  v: Validity = {},
): Promise<CertAndKey> {
  const names = hosts.map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h }));
  const first = hosts[0] ?? 'livinglab-gateway';
  return issue(ca, `CN=${safeName(first)}`, x509.ExtendedKeyUsage.serverAuth, names, v, 730);
}

/** A device's client certificate (2 years by default): CN = device id, which mTLS login matches. */
export async function issueDeviceCert(
  ca: CertAndKey,
  deviceId: string,
  v: Validity = {},
): Promise<CertAndKey> {
  return issue(ca, `CN=${safeName(deviceId)}`, x509.ExtendedKeyUsage.clientAuth, [], v, 730);
}
