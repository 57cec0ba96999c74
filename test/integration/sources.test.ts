// The MessageSource contract (source.suite.ts) run against each source: the embedded broker.
import { createBroker } from '../../src/broker/broker.js';
import { loadConfig } from '../../src/config/load.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { connectDevice } from '../helpers/mqtt.js';
import { sourceSuite } from './source.suite.js';

sourceSuite('embedded broker', () => ({
  create: ({ registry, log }) => {
    const config = loadConfig({ flags: { mqtt: { port: 0, host: '127.0.0.1' } } });
    const broker = createBroker({ config, registry, verifier: createPasswordVerifier(), log });
    return {
      source: broker,
      connectDevice: (id) => connectDevice(`mqtt://127.0.0.1:${broker.port}`, id),
    };
  },
}));
