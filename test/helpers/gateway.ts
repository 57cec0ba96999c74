// A real gateway (buildApp) on port 0 against a real influxd, with its own temporary registry and
// data folder. Devices are registered through the same edit functions the CLI uses.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type App, buildApp } from '../../src/app.js';
import { resolveDataPaths } from '../../src/config/data-paths.js';
import { type ConfigInput, loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { addAccount, addDevice } from '../../src/registry/edit.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { type CertificateRule, EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';
import { type RejectLine, readRejects } from '../../src/storage/rejects-log.js';
import type { SpoolOptions } from '../../src/storage/spool/index.js';

export const PASSWORD = 'correct horse battery';

export interface TestDevice {
  id: string;
  type: string;
  site: string;
  subject?: string;
  interval?: string;
  certificate?: CertificateRule;
}

export interface TestGateway {
  app: App;
  dir: string;
  registryFile: string;
  db: string;
  mqttUrl: string;
  logLines: () => Record<string, unknown>[];
  rejectsLog: () => Promise<RejectLine[]>;
  editRegistry(change: (data: RegistryData) => RegistryData): Promise<void>;
  stop(): Promise<void>;
}

// Cheap hashes keep tests fast; the format and the verification path are the production ones.
const TEST_HASH = hashSecretSync(PASSWORD, 10);

export function withDevices(data: RegistryData, devices: TestDevice[]): RegistryData {
  let next = data;
  for (const d of devices) {
    next = addDevice(next, {
      ...d,
      schemaVersion: 1,
      vendor: 'acme',
      passwordHash: TEST_HASH,
    });
  }
  return next;
}

export interface GatewayOptions {
  influxUrl: string;
  devices: TestDevice[];
  staff?: string[];
  /** Accounts with the `gateway` role (a gateway's own account on an external broker). */
  gatewayAccounts?: string[];
  config?: ConfigInput;
  /** The ops listener's bearer token (what LIVINGLAB_OPS_TOKEN gives `livinglab serve`). */
  opsToken?: string;
  /** The broker auth hooks' secret (what LIVINGLAB_BROKER_HOOKS_TOKEN gives `livinglab serve`). */
  brokerHooksToken?: string;
  /** The spool's file seam (test/helpers/disk-faults.ts). */
  openSpoolFile?: SpoolOptions['openFile'];
  /** The gateway's password on an external broker (what LIVINGLAB_BROKER_PASSWORD gives `serve`). */
  brokerPassword?: string;
}

export async function startGateway(opts: GatewayOptions): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'll-gw-'));
  const registryFile = join(dir, 'lab.yaml');
  let data = withDevices(EMPTY_REGISTRY, opts.devices);
  for (const id of opts.staff ?? []) data = addAccount(data, { id, role: 'staff', passwordHash: TEST_HASH });
  for (const id of opts.gatewayAccounts ?? [])
    data = addAccount(data, { id, role: 'gateway', passwordHash: TEST_HASH });
  await writeRegistryFile(registryFile, data);
  const db = `test_${Math.random().toString(36).slice(2, 10)}`;
  const config = loadConfig({
    flags: {
      registry: registryFile,
      dataDir: join(dir, 'data'),
      logLevel: 'info',
      registryPoll: '100ms',
      ...opts.config,
      // A test that sets some mqtt, http or listener options still never binds a fixed port.
      mqtt: { port: 0, host: '127.0.0.1', ...(opts.config?.mqtt as ConfigInput | undefined) },
      http: { port: 0, host: '127.0.0.1', ...(opts.config?.http as ConfigInput | undefined) },
      listeners: {
        ...(opts.config?.listeners as ConfigInput | undefined),
        ops: {
          port: 0,
          ...((opts.config?.listeners as ConfigInput | undefined)?.ops as ConfigInput | undefined),
        },
      },
      influx: { url: opts.influxUrl, db, ...(opts.config?.influx as ConfigInput | undefined) },
      writer: { flushInterval: '50ms', ...(opts.config?.writer as ConfigInput | undefined) },
    },
  });
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger({ level: 'debug', destination: sink });
  const app = buildApp(config, {
    log,
    ...(opts.openSpoolFile ? { openSpoolFile: opts.openSpoolFile } : {}),
    ...(opts.opsToken ? { opsToken: opts.opsToken } : {}),
    ...(opts.brokerHooksToken ? { brokerHooksToken: opts.brokerHooksToken } : {}),
    ...(opts.brokerPassword !== undefined ? { brokerPassword: opts.brokerPassword } : {}),
  });
  await app.start();
  let stopped: Promise<void> | undefined;
  return {
    app,
    dir,
    registryFile,
    db,
    mqttUrl: `mqtt://127.0.0.1:${app.mqttPort}`,
    logLines: () => lines,
    async rejectsLog() {
      const lines: RejectLine[] = [];
      for await (const line of readRejects(resolveDataPaths(join(dir, 'data')).rejectsLog)) lines.push(line);
      return lines;
    },
    async editRegistry(change) {
      await writeRegistryFile(registryFile, change(await readRegistryFile(registryFile)));
    },
    // Once only: a test may stop its gateway itself and the fixture stops it again when the test ends.
    stop() {
      stopped ??= app.stop().then(() => rm(dir, { recursive: true, force: true }));
      return stopped;
    },
  };
}
