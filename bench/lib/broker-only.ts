// The gateway's embedded broker alone (aedes, authentication, ACL, frame guard, retained status), with
// an ingestion hand-off that accepts at once: the broker's share of the gateway's cost.
// Usage: node --import tsx bench/lib/broker-only.ts <registry> <port>; prints "listening" when ready.
import { createBroker } from '../../src/broker/broker.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { createRegistry } from '../../src/registry/registry.js';

const [registryFile, port] = process.argv.slice(2) as [string, string];
const log = createLogger({ level: 'warn' });
const config = loadConfig({
  flags: { registry: registryFile, mqtt: { port: Number(port), host: '127.0.0.1' } },
});
const registry = createRegistry({ file: registryFile, pollMs: config.registryPollMs, log });
await registry.start();
const broker = createBroker({
  config,
  registry,
  verifier: createPasswordVerifier(),
  log,
});
await broker.start({
  handle: async () => ({ accepted: 0, rejections: [], ingested: true }),
  rejectOversize: () => undefined,
});
console.log('listening');
process.once('SIGTERM', () => {
  void broker
    .stop()
    .then(() => registry.stop())
    .then(() => process.exit(0));
});
