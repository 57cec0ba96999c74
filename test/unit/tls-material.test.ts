import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createCa, issueServerCert } from '../../src/tls/certs.js';
import { loadTlsMaterial } from '../../src/tls/material.js';
import { createTestCerts, type TestCerts } from '../helpers/certs.js';

let certs: TestCerts;
beforeAll(async () => {
  certs = await createTestCerts();
});
afterAll(() => certs.remove());

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

const configFor = (tls: Record<string, string>) => loadConfig({ flags: { tls } });
const serialOf = (pem: unknown) => new X509Certificate(String(pem)).serialNumber;

async function until(check: () => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('loadTlsMaterial', () => {
  it('is undefined when no certificate and key are configured', async () => {
    expect(await loadTlsMaterial(configFor({}), logSink().log)).toBeUndefined();
  });

  it('names the file that cannot be read (LL_TLS_INVALID)', async () => {
    const missing = join(certs.dir, 'nope.key');
    await expect(
      loadTlsMaterial(configFor({ cert: certs.server.cert, key: missing }), logSink().log),
    ).rejects.toMatchObject({ code: 'LL_TLS_INVALID', message: expect.stringContaining(missing) });
  });

  it('refuses a key that does not belong to the certificate, naming both files', async () => {
    const other = await createTestCerts();
    onTestFinished(() => other.remove());
    await expect(
      loadTlsMaterial(configFor({ cert: certs.server.cert, key: other.server.key }), logSink().log),
    ).rejects.toMatchObject({
      code: 'LL_TLS_INVALID',
      message: expect.stringMatching(
        /key in .*server\.key does not belong to the certificate in .*server\.crt/,
      ),
    });
  });

  it('reloads renewed files, and keeps the current material while the key does not fit yet', async () => {
    const own = await createTestCerts();
    onTestFinished(() => own.remove());
    const { log, lines } = logSink();
    const material = await loadTlsMaterial(
      configFor({ cert: own.server.cert, key: own.server.key, ca: own.caFile }),
      log,
      { pollMs: 50 },
    );
    if (!material) throw new Error('expected TLS material');
    onTestFinished(() => material.stop());
    let reloads = 0;
    material.onReload(() => reloads++);
    const before = serialOf(material.options().cert);

    // Half a renewal: a certificate whose key is not there yet.
    const ca = await createCa();
    const foreign = await issueServerCert(ca, ['127.0.0.1']);
    await writeFile(own.server.cert, foreign.cert);
    await until(() =>
      lines.some(
        (l) => l.msg === 'TLS files changed but cannot be used yet; keeping the current certificate',
      ),
    );
    expect(serialOf(material.options().cert)).toBe(before);
    expect(reloads).toBe(0);

    const renewed = await own.renewServer();
    await until(() => reloads > 0);
    expect(serialOf(material.options().cert)).toBe(serialOf(await readFile(renewed.cert, 'utf8')));
    expect(serialOf(material.options().cert)).not.toBe(before);
  });
});
