// Liveness's view of every device behind an external broker. Several gateways split the devices'
// messages between them (a shared subscription), so the gateway that runs liveness (jobs.leader)
// would see only its share and judge a device silent whose messages all went to another gateway.
// This one extra connection subscribes to the devices' reading topics without sharing, at QoS 0 on
// a clean session, and only says which registered device was heard: it never ingests, acknowledges
// or stores anything (its gateway's share comes through the shared sessions as before), and nothing
// is queued for it at the broker while it is away.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../log.js';
import type { RegistrySnapshot } from '../../registry/registry.js';
import { READING_CHANNELS, splitTopic, TOPIC_ROOT } from '../../registry/topics.js';

/** The devices' reading topics, unshared. */
export const SIGHTINGS_FILTER = `${TOPIC_ROOT}/+/+/+/+`;

export interface Sightings {
  start(): void;
  stop(): Promise<void>;
}

/** The device a reading topic names, when it is registered there and enabled. */
export function sightedDevice(topic: string, snapshot: RegistrySnapshot): string | undefined {
  const parts = splitTopic(topic);
  if (!parts || !(READING_CHANNELS as readonly string[]).includes(parts.channel)) return undefined;
  const d = snapshot.devices.get(parts.id);
  return d?.enabled && d.site === parts.site && d.type === parts.type ? d.id : undefined;
}

export function createSightings(deps: {
  url: string;
  /** The gateway's own session options; the client id and session are replaced. */
  options: IClientOptions;
  registry: { current(): RegistrySnapshot };
  onSighting: (deviceId: string) => void;
  log: Logger;
}): Sightings {
  let client: MqttClient | undefined;
  const clientId = `${deps.options.clientId}-liveness`;
  return {
    start() {
      const c = mqtt.connect(deps.url, {
        ...deps.options,
        clientId,
        clean: true,
        properties: {},
      });
      client = c;
      c.handleMessage = (packet, done) => {
        const id = sightedDevice(packet.topic, deps.registry.current());
        if (id) deps.onSighting(id);
        done();
      };
      c.on('connect', () => {
        c.subscribeAsync(SIGHTINGS_FILTER, { qos: 0 }).catch((err: Error) =>
          deps.log.warn({ err, clientId }, 'liveness cannot follow the devices: subscription refused'),
        );
      });
      let warned = false;
      c.on('error', (err) => {
        if (warned) return;
        warned = true;
        deps.log.warn({ err, clientId }, 'liveness connection to the external broker failed; retrying');
      });
    },
    async stop() {
      const c = client;
      client = undefined;
      await c?.endAsync(true);
    },
  };
}
