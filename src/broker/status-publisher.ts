// The retained online/offline status of each device, published as the gateway when its session
// starts and ends. A session taken over by a new connection of the same device is not "offline".
// Publishing status never blocks or fails a connection: a failure is logged and forgotten.
import type { Aedes, Client } from 'aedes';
import type { Logger } from '../log.js';
import { statusTopic } from '../registry/topics.js';
import type { Hooks } from './hooks.js';

type Publish = (topic: string, payload: string, opts: { retain: boolean; qos: 1 }) => Promise<void>;

export function publishDeviceStatus(
  aedes: Aedes,
  deps: {
    hooks: Pick<Hooks, 'identityOf'>;
    publish: Publish;
    clients: () => Record<string, Client>;
    log: Logger;
  },
): void {
  const publishStatus = (client: Client, status: 'online' | 'offline') => {
    const identity = deps.hooks.identityOf(client);
    if (identity?.kind !== 'device') return;
    deps
      .publish(statusTopic(identity.device), status, { retain: true, qos: 1 })
      .catch((err: Error) => deps.log.warn({ deviceId: identity.id, err }, 'could not publish status'));
  };
  aedes.on('clientReady', (client) => publishStatus(client, 'online'));
  aedes.on('clientDisconnect', (client) => {
    const current = deps.clients()[client.id];
    if (current && current !== client) return;
    publishStatus(client, 'offline');
  });
}
