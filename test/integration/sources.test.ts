// The MessageSource contract (source.suite.ts) run against each source: the embedded broker, and
// an external Mosquitto 2.0 consumed through a shared subscription.
import { afterAll, beforeAll } from 'vitest';
import { createBroker } from '../../src/broker/broker.js';
import { loadConfig } from '../../src/config/load.js';
import { createExternalSource } from '../../src/ingest/sources/external.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { PASSWORD } from '../helpers/gateway.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
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

let mosquitto: Mosquitto;
beforeAll(async () => {
  mosquitto = await startMosquitto({ users: { 'src-ox-1': PASSWORD, gateway: 'gateway secret' } });
});
afterAll(() => mosquitto.stop());

let run = 0;
sourceSuite('external broker (Mosquitto 2.0)', () => ({
  create: ({ registry, log }) => {
    // Each test its own session and group: an earlier test's session stays a member of its group.
    run++;
    const external = {
      url: mosquitto.url,
      username: 'gateway',
      clientId: `gw-suite-${run}`,
      group: `suite${run}`,
    };
    const config = loadConfig({ flags: { source: 'external', external } });
    const source = createExternalSource({ config, registry, password: 'gateway secret', log });
    return {
      source,
      connectDevice: (id) => connectDevice(mosquitto.url, id),
      acknowledgements: () => source.stats.acknowledged,
      devicesStayConnected: true,
    };
  },
}));
