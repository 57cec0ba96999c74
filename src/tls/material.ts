// The server's TLS material (certificate chain, key, optional client CA) read from the files named
// by `tls.*`, and kept current: the files are polled, and after a change that reads back as a
// usable whole the listeners are told, so each TLS server can swap its secure context without a
// restart or a dropped connection. It never replaces good material with bad: a renewal caught
// half-written (certificate new, key old) keeps the old material and logs a warning.
import { X509Certificate } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

export interface TlsMaterial {
  /** The current material, for `tls.createServer` and `server.setSecureContext`. */
  options(): SecureContextOptions;
  /** Called after the files changed and were read back successfully. */
  onReload(listener: () => void): void;
  /** When the served (first) certificate of the current chain expires, in Unix seconds. */
  expiresAt(): number;
  /** Stops watching the files. Idempotent. */
  stop(): void;
}

type Files = { cert: string; key: string; ca?: string };

/** True when both a certificate and a key are configured (TLS listeners are on). */
export const isTlsConfigured = (config: Config): boolean => config.tls.cert !== '' && config.tls.key !== '';

async function readPem(file: string, option: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new GatewayError(
      'LL_TLS_INVALID',
      `cannot read ${option} file ${file}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Reads and checks the files; the secure context built here is what every TLS server will build. */
async function readMaterial(
  files: Files,
  minVersion: Config['tls']['minVersion'],
): Promise<SecureContextOptions> {
  const cert = await readPem(files.cert, 'tls.cert');
  const key = await readPem(files.key, 'tls.key');
  const ca = files.ca ? await readPem(files.ca, 'tls.ca') : undefined;
  const options: SecureContextOptions = { cert, key, minVersion, ...(ca ? { ca } : {}) };
  try {
    createSecureContext(options);
  } catch (err) {
    const msg = (err as Error).message;
    // OpenSSL names the failing part, not the file: map it back to the option a technician sets.
    const which = /key values mismatch/i.test(msg)
      ? `the key in ${files.key} does not belong to the certificate in ${files.cert}`
      : /ca|x509.*store/i.test(msg) && files.ca
        ? `${files.ca} (tls.ca) is not a PEM CA bundle`
        : /key/i.test(msg)
          ? `${files.key} (tls.key) is not a PEM private key`
          : `${files.cert} (tls.cert) is not a PEM certificate chain`;
    throw new GatewayError('LL_TLS_INVALID', `${which}: ${msg}`, { cause: err });
  }
  return options;
}

/**
 * Loads the TLS material named by the configuration, or undefined when TLS is not configured.
 * Throws LL_TLS_INVALID naming the file when a file is unreadable or the key does not fit.
 */
export async function loadTlsMaterial(
  config: Config,
  log: Logger,
  opts: { pollMs?: number } = {},
): Promise<TlsMaterial | undefined> {
  const { cert, key, ca } = config.tls;
  // Half a configuration would otherwise mean "no TLS" without a word, and devices told to use
  // 8883 would find nothing there.
  if ((cert === '') !== (key === '') || (ca !== '' && cert === '')) {
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      'tls.cert and tls.key (--tls-cert, --tls-key) must be set together, and tls.ca needs both; TLS stays off without them',
    );
  }
  if (!isTlsConfigured(config)) return undefined;
  const files: Files = { cert, key, ...(ca ? { ca } : {}) };
  let current = await readMaterial(files, config.tls.minVersion);
  // The first certificate of the chain is the one served; its end is what an alert watches, so it
  // is read again with every reload (a renewal moves it).
  const expiryOf = (m: SecureContextOptions) =>
    Math.floor(Date.parse(new X509Certificate(String(m.cert)).validTo) / 1000);
  let expiresAt = expiryOf(current);
  const listeners: (() => void)[] = [];
  let reading: Promise<void> = Promise.resolve();
  // Renewals replace cert and key one after the other; each change re-reads all of them, in order,
  // so the last change always ends in a read of the final files.
  const reread = () => {
    reading = reading.then(async () => {
      try {
        const next = await readMaterial(files, config.tls.minVersion);
        if (next.cert === current.cert && next.key === current.key && next.ca === current.ca) return;
        current = next;
        expiresAt = expiryOf(next);
        log.info({ cert: files.cert }, 'TLS certificate reloaded');
        for (const l of listeners) l();
      } catch (err) {
        log.warn({ err }, 'TLS files changed but cannot be used yet; keeping the current certificate');
      }
    });
  };
  // Polling (stat), not fs.watch: renewals (certbot, cert-manager) replace files by rename or
  // through symlinks, which fs.watch loses track of.
  const watched = Object.values(files);
  const interval = opts.pollMs ?? 1000;
  for (const file of watched) watchFile(file, { interval, persistent: false }, reread);
  let stopped = false;
  return {
    options: () => current,
    expiresAt: () => expiresAt,
    onReload: (listener) => {
      listeners.push(listener);
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      for (const file of watched) unwatchFile(file, reread);
    },
  };
}
