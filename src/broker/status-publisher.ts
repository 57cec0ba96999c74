// The start and end of each device's MQTT session, told to whoever decides the device's retained
// online/offline status (jobs/liveness.ts in the gateway); without such a listener the broker
// publishes `online` and `offline` itself. A session taken over by a new connection of the same
// device has not ended. Publishing status never blocks or fails a connection: a failure is logged
// and forgotten.
import type { Aedes, Client } from 'aedes';
import type { Logger } from '../log.js';
import { statusTopic } from '../registry/topics.js';
import type { Device } from '../registry/types.js';
import type { Hooks } from './hooks.js';

type Publish = (topic: string, payload: string, opts: { retain: boolean; qos: 1 }) => Promise<void>;

export type SessionEvent = 'connected' | 'disconnected';
/** Told of every device session that begins or ends, synchronously from aedes' events. */
export type SessionListener = (device: Device, event: SessionEvent) => void;

/** The broker's own rule when nobody else decides: online while connected. */
function publishOnSession(publish: Publish, log: Logger): SessionListener {
  return (device, event) => {
    publish(statusTopic(device), event === 'connected' ? 'online' : 'offline', {
      retain: true,
      qos: 1,
    }).catch((err: Error) => log.warn({ deviceId: device.id, err }, 'could not publish status'));
  };
}

export function publishDeviceStatus(
  aedes: Aedes,
  deps: {
    hooks: Pick<Hooks, 'identityOf'>;
    publish: Publish;
    clients: () => Record<string, Client>;
    log: Logger;
    onSession?: SessionListener | undefined;
  },
): void {
  const onSession = deps.onSession ?? publishOnSession(deps.publish, deps.log);
  const tell = (client: Client, event: SessionEvent) => {
    const identity = deps.hooks.identityOf(client);
    if (identity?.kind === 'device') onSession(identity.device, event);
  };
  aedes.on('clientReady', (client) => tell(client, 'connected'));
  aedes.on('clientDisconnect', (client) => {
    const current = deps.clients()[client.id];
    if (current && current !== client) return;
    tell(client, 'disconnected');
  });
}
