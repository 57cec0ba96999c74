import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recheckIdentity } from '../../src/registry/acl.js';
import {
  altNamesOf,
  matchCertificate,
  type PeerCertificate,
  parseCertificateRule,
} from '../../src/registry/certificate-rule.js';
import { setDeviceCertificate } from '../../src/registry/edit.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { toSnapshot } from '../../src/registry/registry.js';
import { type Device, EMPTY_REGISTRY } from '../../src/registry/types.js';

const FP = `${'AB:'.repeat(31)}CD`;
const OTHER_FP = `${'12:'.repeat(31)}34`;

const device = (extra: Partial<Device> = {}): Device => ({
  id: 'ox-0001',
  type: 'pulse-oximeter',
  schemaVersion: 1,
  site: 'odense',
  vendor: 'acme',
  assignments: [],
  enabled: true,
  passwordHash: '$7$101$x$y',
  ...extra,
});

const peer = (extra: Partial<PeerCertificate> = {}): PeerCertificate => ({
  verified: true,
  fingerprint256: FP,
  commonNames: ['ox-0001'],
  altNames: [],
  ...extra,
});

describe('matchCertificate', () => {
  it.each([
    ['lab-ca, CN = device id', device({ certificate: { issuer: 'lab-ca' } }), peer(), true],
    [
      'lab-ca, a SAN = device id',
      device({ certificate: { issuer: 'lab-ca' } }),
      peer({ commonNames: ['vendor-x'], altNames: ['ox-0001'] }),
      true,
    ],
    [
      'lab-ca, CN of another device',
      device({ certificate: { issuer: 'lab-ca' } }),
      peer({ commonNames: ['ox-0002'] }),
      false,
    ],
    [
      'lab-ca, no names at all',
      device({ certificate: { issuer: 'lab-ca' } }),
      peer({ commonNames: [] }),
      false,
    ],
    [
      'fingerprint equal',
      device({ certificate: { fingerprint256: FP } }),
      peer({ commonNames: ['anything'] }),
      true,
    ],
    [
      'fingerprint equal, other case',
      device({ certificate: { fingerprint256: FP.toLowerCase() } }),
      peer(),
      true,
    ],
    ['fingerprint differs', device({ certificate: { fingerprint256: OTHER_FP } }), peer(), false],
    ['no rule', device(), peer(), false],
    ['disabled device', device({ enabled: false, certificate: { issuer: 'lab-ca' } }), peer(), false],
    [
      'chain not verified (other CA, expired)',
      device({ certificate: { fingerprint256: FP } }),
      peer({ verified: false, verifyError: 'CERT_HAS_EXPIRED' }),
      false,
    ],
  ])('%s → %s', (_name, d, p, allowed) => {
    expect(matchCertificate(d, p).allow).toBe(allowed);
  });

  it('says why an unverified certificate was refused', () => {
    const decision = matchCertificate(
      device({ certificate: { issuer: 'lab-ca' } }),
      peer({ verified: false, verifyError: 'CERT_HAS_EXPIRED' }),
    );
    expect(decision).toEqual({ allow: false, reason: 'client certificate not accepted: CERT_HAS_EXPIRED' });
  });
});

describe('parseCertificateRule and altNamesOf', () => {
  it.each([
    ['lab-ca', { issuer: 'lab-ca' }],
    [FP.toLowerCase(), { fingerprint256: FP }],
    ['AB:CD', undefined],
    ['some-ca', undefined],
  ])('%s → %j', (text, rule) => {
    expect(parseCertificateRule(text)).toEqual(rule);
  });

  it('reads Node subjectaltname strings', () => {
    expect(altNamesOf('DNS:ox-0001, URI:urn:dev:ox-0001, IP Address:10.0.0.1')).toEqual([
      'ox-0001',
      'urn:dev:ox-0001',
      '10.0.0.1',
    ]);
    expect(altNamesOf(undefined)).toEqual([]);
  });
});

describe('the certificate rule in the registry', () => {
  it('round-trips through lab.yaml and refuses a malformed fingerprint naming the line', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'll-cert-rule-')), 'lab.yaml');
    const data = {
      ...EMPTY_REGISTRY,
      sites: [{ id: 'odense' }],
      devices: [device({ certificate: { fingerprint256: FP } })],
    };
    await writeRegistryFile(file, data);
    expect((await readRegistryFile(file)).devices[0]?.certificate).toEqual({ fingerprint256: FP });
    await writeRegistryFile(file, setDeviceCertificate(data, 'ox-0001', undefined));
    expect((await readRegistryFile(file)).devices[0]).not.toHaveProperty('certificate');
    writeFileSync(
      file,
      `version: 1\nsites: [{id: odense}]\ndevices:\n  - {id: ox-0001, type: pulse-oximeter, schemaVersion: 1, site: odense, vendor: acme, certificate: {fingerprint256: "AB:CD"}}\n`,
    );
    await expect(readRegistryFile(file)).rejects.toMatchObject({
      code: 'LL_REGISTRY_PARSE',
      message: expect.stringContaining('lab.yaml:4'),
    });
  });

  it('a changed rule no longer allows a connection made under the old one', () => {
    const before = device({ certificate: { fingerprint256: FP } });
    const after = setDeviceCertificate({ ...EMPTY_REGISTRY, devices: [before] }, 'ox-0001', {
      fingerprint256: OTHER_FP,
    });
    const decision = recheckIdentity(toSnapshot(after), { kind: 'device', id: before.id, device: before });
    expect(decision).toEqual({
      allow: false,
      reason: 'the certificate rule of device ox-0001 changed after it connected',
    });
  });
});
