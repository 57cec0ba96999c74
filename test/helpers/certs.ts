// Test certificates in a temporary folder, made with the project's own src/tls/certs.ts: a lab CA,
// a server certificate for 127.0.0.1 and localhost, device certificates (CN = device id), an
// expired one and one from another CA. Every method returns file paths, as mosquitto_pub and the
// gateway's `tls.*` options take them.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CertAndKey, createCa, issueDeviceCert, issueServerCert } from '../../src/tls/certs.js';

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint as Node prints it (AB:CD:...). */
  readonly fingerprint256: string;
}

export interface TestCerts {
  readonly dir: string;
  /** The lab CA's certificate file (for `tls.ca` and clients' `--cafile`). */
  readonly caFile: string;
  readonly caPem: string;
  /** The server certificate and key (127.0.0.1 and localhost). */
  readonly server: CertFiles;
  /** A client certificate for the device, issued by the lab CA. */
  device(id: string): Promise<CertFiles>;
  /** A client certificate for the device, issued by the lab CA, that expired yesterday. */
  expiredDevice(id: string): Promise<CertFiles>;
  /** A client certificate for the device from a CA the gateway does not know. */
  foreignDevice(id: string): Promise<CertFiles>;
  /** Writes a new server certificate and key over the old files (as a renewal does); returns it. */
  renewServer(): Promise<CertFiles>;
  remove(): Promise<void>;
}

let seq = 0;

async function save(dir: string, name: string, pair: CertAndKey): Promise<CertFiles> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  // Written beside and renamed in, as renewal tools do: a reader never sees half a file.
  await writeFile(`${cert}.tmp`, pair.cert, { mode: 0o600 });
  await writeFile(`${key}.tmp`, pair.key, { mode: 0o600 });
  await rename(`${cert}.tmp`, cert);
  await rename(`${key}.tmp`, key);
  return { cert, key, fingerprint256: new X509Certificate(pair.cert).fingerprint256 };
}

export async function createTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'll-certs-'));
  const ca = await createCa({ name: 'Test Lab CA' });
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.cert, { mode: 0o600 });
  const hosts = ['127.0.0.1', 'localhost'];
  const server = await save(dir, 'server', await issueServerCert(ca, hosts));
  let other: CertAndKey | undefined;
  const day = 86_400_000;
  return {
    dir,
    caFile,
    caPem: ca.cert,
    server,
    device: async (id) => save(dir, `${id}-${++seq}`, await issueDeviceCert(ca, id)),
    expiredDevice: async (id) =>
      save(
        dir,
        `${id}-expired-${++seq}`,
        await issueDeviceCert(ca, id, {
          notBefore: new Date(Date.now() - 30 * day),
          notAfter: new Date(Date.now() - day),
        }),
      ),
    foreignDevice: async (id) => {
      other ??= await createCa({ name: 'Some Other CA' });
      return save(dir, `${id}-foreign-${++seq}`, await issueDeviceCert(other, id));
    },
    renewServer: async () => save(dir, 'server', await issueServerCert(ca, hosts)),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
