// Pure access decisions: who may connect, publish and subscribe. A device publishes only under its
// own lab/{site}/{type}/{id}/ and subscribes only to its own `rejected` topic; staff read lab/#
// and publish nothing. Nothing else is allowed: decisions default to deny.
import type { RegistrySnapshot } from './registry.js';
import type { Account, Device } from './types.js';

export type Identity =
  | { readonly kind: 'device'; readonly id: string; readonly device: Device }
  | { readonly kind: 'account'; readonly id: string; readonly account: Account };

export type Decision = { readonly allow: true } | { readonly allow: false; readonly reason: string };

const ALLOW: Decision = { allow: true };
const deny = (reason: string): Decision => ({ allow: false, reason });

export const DEVICE_CHANNELS = ['telemetry', 'event', 'status'] as const;

export function devicePrefix(d: Pick<Device, 'site' | 'type' | 'id'>): string {
  return `lab/${d.site}/${d.type}/${d.id}/`;
}

export function rejectedTopic(d: Pick<Device, 'site' | 'type' | 'id'>): string {
  return `${devicePrefix(d)}rejected`;
}

/** Looks a username up: devices first, then accounts (ids are unique across both). */
export function findIdentity(snapshot: RegistrySnapshot, username: string): Identity | undefined {
  const device = snapshot.devices.get(username);
  if (device) return { kind: 'device', id: device.id, device };
  const account = snapshot.accounts.get(username);
  if (account) return { kind: 'account', id: account.id, account };
  return undefined;
}

export function canConnect(identity: Identity, clientId: string): Decision {
  const enabled = identity.kind === 'device' ? identity.device.enabled : identity.account.enabled;
  if (!enabled) return deny(`${identity.kind} ${identity.id} is disabled`);
  // A device's client id is its device id, so no one can take over another device's session.
  if (identity.kind === 'device' && clientId !== identity.id) {
    return deny(`client id "${clientId}" must equal the device id "${identity.id}"`);
  }
  return ALLOW;
}

export function canPublish(identity: Identity, topic: string): Decision {
  if (identity.kind !== 'device') return deny(`${identity.id} (staff) may not publish`);
  const prefix = devicePrefix(identity.device);
  if (!topic.startsWith(prefix)) return deny(`device ${identity.id} may publish only under ${prefix}`);
  if (topic === rejectedTopic(identity.device))
    return deny('only the gateway publishes on the rejected topic');
  return ALLOW;
}

export function canSubscribe(identity: Identity, filter: string): Decision {
  if (identity.kind === 'device') {
    return filter === rejectedTopic(identity.device)
      ? ALLOW
      : deny(`device ${identity.id} may subscribe only to ${rejectedTopic(identity.device)}`);
  }
  if (filter.startsWith('lab/')) return ALLOW;
  return deny(`staff may subscribe only under lab/`);
}
