// Pure access decisions: who may connect, publish and subscribe. A device publishes only under its
// own lab/{site}/{type}/{id}/ and subscribes only to its own `rejected` topic; staff read lab/#
// and publish nothing; a gateway's own account (external mode) takes the shared subscription, reads
// lab/ and publishes only devices' `rejected` and `status` topics. Nothing else is allowed: decisions default to deny. Client ids: a device's is
// its device id; an account's is its account id or `{accountId}:{anything}` (':' is never in a device
// id), so an account can never take over a device's session.

import { isSegment } from './ids.js';
import type { RegistrySnapshot } from './registry.js';
import { devicePrefix, REJECTED_CHANNEL, rejectedTopic, splitTopic, TOPIC_ROOT } from './topics.js';
import type { Account, Device } from './types.js';

export type Identity =
  | { readonly kind: 'device'; readonly id: string; readonly device: Device }
  | { readonly kind: 'account'; readonly id: string; readonly account: Account };

export type Denial = { readonly allow: false; readonly reason: string };
export type Decision = { readonly allow: true } | Denial;

const ALLOW: Decision = { allow: true };
const deny = (reason: string): Denial => ({ allow: false, reason });

/** Looks a username up: devices first, then accounts (ids are unique across both). */
export function findIdentity(snapshot: RegistrySnapshot, username: string): Identity | undefined {
  const device = snapshot.devices.get(username);
  if (device) return { kind: 'device', id: device.id, device };
  const account = snapshot.accounts.get(username);
  if (account) return { kind: 'account', id: account.id, account };
  return undefined;
}

/** A refusal because of the client id alone (CONNACK 2, identifier rejected) is marked as such. */
export type ConnectDecision = Decision | (Denial & { readonly clientId: true });

export function canConnect(identity: Identity, clientId: string): ConnectDecision {
  const enabled = identity.kind === 'device' ? identity.device.enabled : identity.account.enabled;
  if (!enabled) return deny(`${identity.kind} ${identity.id} is disabled`);
  // A device's client id is its device id, so no one can take over another device's session.
  if (identity.kind === 'device' && clientId !== identity.id) {
    return { ...deny(`client id "${clientId}" must equal the device id "${identity.id}"`), clientId: true };
  }
  if (identity.kind === 'account' && clientId !== identity.id && !clientId.startsWith(`${identity.id}:`)) {
    return {
      ...deny(
        `client id "${clientId}" must be the account id "${identity.id}" or start with "${identity.id}:"`,
      ),
      clientId: true,
    };
  }
  return ALLOW;
}

/**
 * The identity a connection logged in as, as the registry has it now. Denied when the device or
 * account was removed, disabled, moved or given a new password since: its connection is no longer
 * allowed, and neither is anything it publishes, its last will included.
 */
export function recheckIdentity(
  snapshot: RegistrySnapshot,
  loggedIn: Identity,
): { readonly allow: true; readonly identity: Identity } | Denial {
  const fresh = findIdentity(snapshot, loggedIn.id);
  if (!fresh || fresh.kind !== loggedIn.kind) {
    return deny(`${loggedIn.kind} ${loggedIn.id} is no longer in the registry`);
  }
  const before = loggedIn.kind === 'device' ? loggedIn.device : loggedIn.account;
  const after = fresh.kind === 'device' ? fresh.device : fresh.account;
  if (!after.enabled) return deny(`${fresh.kind} ${fresh.id} is disabled`);
  if (after.passwordHash !== before.passwordHash) {
    return deny(`the password of ${fresh.kind} ${fresh.id} changed after it connected`);
  }
  // A rule changed (a pinned certificate replaced after a compromise): a connection made under the
  // old rule may hold the certificate that is no longer wanted.
  const ruleOf = (x: typeof after) => JSON.stringify('certificate' in x ? x.certificate : undefined);
  if (ruleOf(after) !== ruleOf(before)) {
    return deny(`the certificate rule of ${fresh.kind} ${fresh.id} changed after it connected`);
  }
  if (
    fresh.kind === 'device' &&
    loggedIn.kind === 'device' &&
    devicePrefix(fresh.device) !== devicePrefix(loggedIn.device)
  ) {
    return deny(`device ${fresh.id} moved to ${devicePrefix(fresh.device)} after it connected`);
  }
  return { allow: true, identity: fresh };
}

/** The filter a gateway's sessions subscribe to, after `$share/{group}/` (ingest/sources/external.ts). */
export const GATEWAY_FILTER = `${TOPIC_ROOT}/+/+/+/+`;
/** Channels a gateway publishes on: feedback, and a silent device's status (jobs/liveness.ts). */
const GATEWAY_CHANNELS: readonly string[] = [REJECTED_CHANNEL, 'status'];
const SHARE_GROUP_RE = /^\$share\/([A-Za-z0-9_-]{1,64})\/(.*)$/;

/** A gateway answers devices: their `rejected` and `status` topics, well formed, and nothing else. */
function gatewayMayPublish(id: string, topic: string): Decision {
  const parts = splitTopic(topic);
  const ok =
    parts !== undefined &&
    GATEWAY_CHANNELS.includes(parts.channel) &&
    [parts.site, parts.type, parts.id].every(isSegment);
  return ok ? ALLOW : deny(`gateway ${id} may publish only on lab/{site}/{type}/{id}/rejected or .../status`);
}

/** A gateway reads lab/ and takes its share of the devices' topics through any group. */
function gatewayMaySubscribe(id: string, filter: string): Decision {
  const shared = SHARE_GROUP_RE.exec(filter);
  if (shared) {
    return shared[2] === GATEWAY_FILTER
      ? ALLOW
      : deny(`gateway ${id} may share only $share/{group}/${GATEWAY_FILTER}`);
  }
  if (filter.startsWith(`${TOPIC_ROOT}/`)) return ALLOW;
  return deny(`gateway ${id} may subscribe only under ${TOPIC_ROOT}/ or to $share/{group}/${GATEWAY_FILTER}`);
}

const isGateway = (identity: Identity) => identity.kind === 'account' && identity.account.role === 'gateway';

export function canPublish(identity: Identity, topic: string): Decision {
  if (identity.kind !== 'device') return deny(`${identity.id} (${identity.account.role}) may not publish`);
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
  if (filter.startsWith(`${TOPIC_ROOT}/`)) return ALLOW;
  return deny(`staff may subscribe only under ${TOPIC_ROOT}/`);
}

/**
 * The QoS every granted subscription gets: aedes has no offline-queue limit for persistent
 * sessions (aedes#1087) and queues only QoS > 0 for an offline client, so devices get their
 * feedback and staff their live view at QoS 0, and nothing piles up for an offline session.
 */
export const SUBSCRIPTION_QOS = 0;

/**
 * The QoS a broker's hook grants a subscription (VerneMQ lets the hook set it): a gateway keeps the
 * QoS 1 it asked for, or the broker would deliver the devices' readings at QoS 0, unacknowledged,
 * and a gateway killed with them in flight would lose them; everyone else gets SUBSCRIPTION_QOS.
 */
export function grantedQos(snapshot: RegistrySnapshot, username: string, requested: number): number {
  const identity = findIdentity(snapshot, username);
  return identity && isGateway(identity) ? Math.min(requested, 1) : SUBSCRIPTION_QOS;
}

/** Health data is never kept as a retained message; only a device's status may be. */
export const mayRetain = (topic: string): boolean => topic.endsWith('/status');

export type BrokerAction = 'publish' | 'subscribe';

/**
 * What an external broker asks of a client it already let in (EMQX, VerneMQ and mosquitto-go-auth
 * send the username and client id with every check): the identity as the registry has it now,
 * under the login rule (enabled, client id), then the topic rule the embedded broker applies.
 */
export function authorizeAction(
  snapshot: RegistrySnapshot,
  who: { readonly username: string; readonly clientId: string },
  action: BrokerAction,
  topic: string,
): Decision {
  const identity = findIdentity(snapshot, who.username);
  if (!identity) return deny(`${who.username} is not in the registry`);
  const login = canConnect(identity, who.clientId);
  if (!login.allow) return deny(login.reason);
  // A gateway's rights are an external broker's business only: on the embedded broker the gateway
  // itself is the one answering devices, so there its account reads like staff and publishes nothing.
  if (isGateway(identity))
    return action === 'publish'
      ? gatewayMayPublish(identity.id, topic)
      : gatewayMaySubscribe(identity.id, topic);
  return action === 'publish' ? canPublish(identity, topic) : canSubscribe(identity, topic);
}
