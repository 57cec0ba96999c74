// The publish side of the aedes callbacks: the topic ACL on each PUBLISH, the hand-off to
// ingestion, and which deliveries are not made. aedes writes the QoS 1 PUBACK when the
// authorizePublish callback is called with no error, so that call waits for ingestion's answer:
// never acknowledge before the spool commit, never forward a rejected message.
import type { AedesOptions, Client, PublishPacket } from 'aedes';
import { canPublish, type Identity, mayRetain, recheckIdentity } from '../registry/acl.js';
import type { Registry } from '../registry/registry.js';
import { isBackedUp, PUBLISH_OVERHEAD } from './backlog.js';
import type { HooksDeps } from './hooks.js';

export type Who = (client: Client) => Record<string, unknown>;

/**
 * Who may publish what, now. The registry is a series of immutable snapshots: a client's recheck and
 * its last topic's ACL decision hold until the snapshot (or its login identity) changes, so a device
 * publishing on its usual topic pays the lookups once per registry change, not once per message.
 */
function createPublishDecider(registry: Registry) {
  type Recheck = ReturnType<typeof recheckIdentity>;
  interface Checked {
    snapshot: object;
    loggedIn: Identity;
    current: Recheck;
    topic?: string;
    decision?: ReturnType<typeof canPublish>;
  }
  const checked = new WeakMap<Client, Checked>();
  return (client: Client, loggedIn: Identity, topic: string) => {
    const snapshot = registry.current();
    let c = checked.get(client);
    if (!c || c.snapshot !== snapshot || c.loggedIn !== loggedIn) {
      c = { snapshot, loggedIn, current: recheckIdentity(snapshot, loggedIn) };
      checked.set(client, c);
    }
    const { current } = c;
    if (!current.allow) return { identity: loggedIn, decision: current };
    if (c.topic !== topic) {
      c.topic = topic;
      c.decision = canPublish(current.identity, topic);
    }
    return { identity: current.identity, decision: c.decision as ReturnType<typeof canPublish> };
  };
}

/**
 * authorizePublish and authorizeForward: the ACL on each publish, the hand-off to ingestion (aedes
 * writes the QoS 1 PUBACK when `callback(null)` is called: the acknowledgement waits for it), and
 * the deliveries refused: messages ingestion rejected and deliveries to a backed-up connection.
 */
export function createPublishHooks(deps: HooksDeps, identities: WeakMap<Client, Identity>, who: Who) {
  const { registry, onPublish, log } = deps;
  // Payload buffers of messages the pipeline rejected: acknowledged, but never forwarded.
  const blocked = new WeakSet<Buffer>();
  const stats = { deliveriesDropped: 0 };
  const decide = createPublishDecider(registry);

  const authorizePublish: NonNullable<AedesOptions['authorizePublish']> = (
    client,
    packet: PublishPacket,
    callback,
  ) => {
    const loggedIn = client ? identities.get(client) : undefined;
    if (!client || !loggedIn) return callback(new Error('not authenticated'));
    // Against the registry as it is now, not as it was at login: a will fires when enforceRegistry
    // closes a disabled, removed or moved device, and must not be stored.
    const { identity, decision } = decide(client, loggedIn, packet.topic);
    if (!decision.allow) {
      log.warn(
        { ...who(client), topic: packet.topic, reason: decision.reason },
        'publish denied; closing connection',
      );
      return callback(new Error(decision.reason));
    }
    const isStatus = mayRetain(packet.topic);
    if (!isStatus) packet.retain = false;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    onPublish({ topic: packet.topic, payload, identity, clientId: client.id, receivedAt: new Date() }).then(
      (verdict) => {
        if (verdict.rejections.length > 0) {
          blocked.add(payload);
          packet.payload = payload;
          if (isStatus) packet.retain = false;
        }
        callback(null);
      },
      (err: Error) => {
        // No PUBACK: the device keeps the message and sends it again.
        log.error({ ...who(client), topic: packet.topic, err }, 'ingestion failed; message not acknowledged');
        callback(err);
      },
    );
  };

  const authorizeForward: NonNullable<AedesOptions['authorizeForward']> = (client, packet) => {
    if (blocked.has(packet.payload as Buffer)) return null;
    // Called per delivery. aedes makes a delivery to a socket past its high-water mark wait for
    // 'drain', holding one of mqemitter's 100 global concurrency slots; a client that stops
    // reading then stalls every delivery and piles up a backlog whose drain on disconnect
    // recursed until the stack overflowed (docs/architecture.md, Pitfalls). Drop instead, and count
    // it.
    const bytes = Buffer.byteLength(packet.topic) + Buffer.byteLength(packet.payload) + PUBLISH_OVERHEAD;
    if (client && isBackedUp(client, bytes)) {
      stats.deliveriesDropped++;
      return null;
    }
    return packet;
  };
  return { authorizePublish, authorizeForward, stats };
}
