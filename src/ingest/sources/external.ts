// The external message source: an existing MQTT broker or broker cluster (Mosquitto, EMQX,
// VerneMQ, HiveMQ) consumed as an MQTT 5 client with its own credentials, through a shared
// subscription ($share/GROUP/lab/+/+/+/+) on a persistent session, so several gateways can split
// the messages and what arrives while a gateway is away waits for it at the broker.
// It never acknowledges a message before ingestion has answered for it (external-acks.ts), never
// hands in what the gateway itself published (feedback, status), and never trusts a topic without
// the registry: the device a topic names must be registered and enabled.
// A gateway killed with messages unacknowledged loses nothing at the broker, but does not hand them
// on either: Mosquitto 2.0.11 keeps them (and the rest of a dead member's share) in its session and
// gives them to the next client that connects under its client id, not to the group's other
// members (measured, test/integration/cluster.test.ts). Hence the fixed client id, clean start off
// and a long session expiry, and the operational rule in README ("Several gateways on one broker"):
// a gateway that stops comes back, or another takes its client id over before the session expires.
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Config } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Identity } from '../../registry/acl.js';
import type { RegistrySnapshot } from '../../registry/registry.js';
import { REJECTED_CHANNEL, splitTopic, TOPIC_ROOT } from '../../registry/topics.js';
import type { Unattributed } from '../record.js';
import type { Ingestion, MessageSource } from '../source.js';
import { type AckGate, type AckGateStats, createAckGate } from './external-acks.js';
import { createSightings } from './external-sightings.js';

/** MQTT 5 user property on everything the gateway publishes, so its own messages are told apart. */
export const ORIGIN_PROPERTY = 'livinglab-origin';
const ORIGIN_GATEWAY = 'gateway';

/** Session Expiry Interval is a four-byte number of seconds; 0xFFFFFFFF would mean "never". */
const MAX_SESSION_EXPIRY_S = 0xfffffffe;

export interface ExternalSourceStats extends AckGateStats {
  /** PUBACKs sent to the broker: messages the gateway took responsibility for. */
  acknowledged: number;
}

/** The external source; what only the broker knows (connections, connected devices) is null. */
export interface ExternalSource extends MessageSource {
  /** The broker's URL as logs show it (any credentials in it left out). */
  readonly url: string;
  /** True while every session to the broker is up. */
  readonly connected: boolean;
  readonly connectedClients: null;
  connectedDevices(): null;
  readonly stats: Readonly<ExternalSourceStats>;
  /** For /readyz: why the source takes no messages now, or undefined. */
  notReady(): string | undefined;
}

export interface ExternalSourceDeps {
  config: Config;
  registry: { current(): RegistrySnapshot };
  /** The gateway's password on the broker (config/load.ts loadBrokerPassword). */
  password?: string;
  /**
   * Told of every registered device heard at the broker, not only this gateway's share (set on the
   * gateway that runs liveness: external-sightings.ts).
   */
  onSighting?: (deviceId: string) => void;
  log: Logger;
}

/** The topic filter of the gateway's shared subscription. */
export const sharedFilter = (group: string): string => `$share/${group}/${TOPIC_ROOT}/+/+/+/+`;

/**
 * Who a message came from, by its topic and the registry: the device it names when that device is
 * registered and enabled (ingest/route.ts then checks its site, type and channel), else why not.
 */
export function attributeTopic(topic: string, snapshot: RegistrySnapshot): Identity | Unattributed {
  const parts = splitTopic(topic);
  if (!parts)
    return {
      kind: 'unattributed',
      id: '',
      reason: `topic must be ${TOPIC_ROOT}/{site}/{type}/{id}/{channel}`,
    };
  const device = snapshot.devices.get(parts.id);
  if (!device) return { kind: 'unattributed', id: parts.id, reason: `no device ${parts.id} in the registry` };
  if (!device.enabled)
    return { kind: 'unattributed', id: parts.id, reason: `device ${parts.id} is disabled` };
  return { kind: 'device', id: device.id, device };
}

/** Feedback and the gateway's own status messages come back through the subscription: skipped. */
function isOwn(packet: IPublishPacket): boolean {
  if (splitTopic(packet.topic)?.channel === REJECTED_CHANNEL) return true;
  return packet.properties?.userProperties?.[ORIGIN_PROPERTY] === ORIGIN_GATEWAY;
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `external.ca: cannot read ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function clientOptions(config: Config, clientId: string, password: string | undefined): IClientOptions {
  const ext = config.external;
  return {
    protocolVersion: 5,
    clientId,
    // A persistent session: the broker keeps the subscription and the messages while we are away.
    clean: false,
    ...(ext.username ? { username: ext.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(ext.ca ? { ca: readCa(ext.ca) } : {}),
    keepalive: 30,
    reconnectPeriod: 1000,
    // A login refused after start-up (a password rotated at the broker) is retried too; start()
    // itself still fails on the first refusal.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    // Subscribed on each connection below, not replayed by MQTT.js.
    resubscribe: false,
    // Feedback is QoS 0: while disconnected it is dropped, not queued in memory without bound.
    queueQoSZero: false,
    properties: {
      sessionExpiryInterval: Math.min(MAX_SESSION_EXPIRY_S, Math.ceil(ext.sessionExpiryMs / 1000)),
      receiveMaximum: ext.receiveMaximum,
    },
  };
}

/** Resolves on the first CONNACK and SUBACK; rejects with what the operator must fix. */
function firstSession(client: MqttClient, url: string, subscribed: Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error & { code?: unknown }) => {
      clearTimeout(timer);
      const refused = typeof err.code === 'number';
      reject(
        refused
          ? new GatewayError(
              'LL_BROKER_REFUSED',
              `the external broker at ${url} refused the gateway: ${err.message}; check external.username, LIVINGLAB_BROKER_PASSWORD (or external.passwordFile) and the broker's ACL for the gateway account`,
              { cause: err },
            )
          : new GatewayError(
              'LL_BROKER_UNREACHABLE',
              `the external broker at ${url} could not be reached: ${err.message}; check --broker-url and that the broker runs${url.startsWith('mqtts:') ? ", and that external.ca names the CA that signed the broker's certificate" : ''}`,
              { cause: err },
            ),
      );
    };
    // MQTT.js retries a connection that times out without an error: give up after a few tries.
    const timer = setTimeout(() => fail(new Error('no answer within 30 s')), 30_000);
    client.once('error', fail);
    subscribed.then(() => {
      clearTimeout(timer);
      client.off('error', fail);
      resolve();
    }, fail);
  });
}

async function subscribe(client: MqttClient, filter: string): Promise<void> {
  const granted = await client.subscribeAsync(filter, { qos: 1 });
  const code = granted[0]?.qos ?? 128;
  if (code >= 0x80) {
    throw Object.assign(new Error(`subscription to ${filter} refused (reason code ${code})`), { code });
  }
}

function toRecord(packet: IPublishPacket, snapshot: RegistrySnapshot) {
  const identity = attributeTopic(packet.topic, snapshot);
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  return { topic: packet.topic, payload, identity, clientId: identity.id, receivedAt: new Date() };
}

/**
 * Replaces MQTT.js's handleMessage (docs/architecture.md, Pitfalls): the PUBACK of a QoS 1 message goes out when the
 * callback is called without an error, which the gate does only after ingestion committed it.
 */
function handleMessages(
  client: MqttClient,
  deps: {
    gate: AckGate;
    ingestion: () => Ingestion | undefined;
    registry: ExternalSourceDeps['registry'];
    log: Logger;
  },
): void {
  client.handleMessage = (packet, done) => {
    const ingestion = deps.ingestion();
    if (isOwn(packet)) return done();
    if (!ingestion) return done(new Error('source stopped'));
    const record = toRecord(packet, deps.registry.current());
    if (packet.qos === 0) {
      // No acknowledgement to wait for, and none to withhold: never stall the connection for it.
      ingestion.handle(record).catch((err: Error) => deps.log.debug({ err }, 'QoS 0 message not kept'));
      return done();
    }
    deps.gate.run(() => ingestion.handle(record), done);
  };
}

/** The URL as logs and errors show it: without any user name or password written into it. */
function shownUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//');
}

/**
 * The client's life: each connection (re)subscribes and clears what the gate owed (the broker
 * sends it again by itself); counts the PUBACKs that really leave. Resolves once the first
 * session is subscribed.
 */
function watchSession(
  c: MqttClient,
  deps: { gate: AckGate; stats: { acknowledged: number }; url: string; filter: string; log: Logger },
): Promise<void> {
  const { gate, stats, url, filter, log } = deps;
  return new Promise<void>((resolve, reject) => {
    let first = true;
    c.on('packetsend', (p) => {
      if (p.cmd === 'puback') stats.acknowledged++;
    });
    c.on('connect', (ack) => {
      gate.connected();
      log.info({ url, sessionPresent: ack.sessionPresent }, 'connected to the external broker');
      const subscribing = subscribe(c, filter);
      if (first) subscribing.then(resolve, reject);
      else subscribing.catch((err: Error) => log.error({ err, filter }, 'subscription refused'));
      first = false;
    });
    c.on('offline', () => log.warn({ url }, 'external broker connection lost; reconnecting'));
    // Logged when it changes, not on every retry a second.
    let lastError = '';
    c.on('connect', () => {
      lastError = '';
    });
    c.on('error', (err) => {
      if (first || err.message === lastError) return;
      lastError = err.message;
      log.warn({ err, url }, 'external broker connection error');
    });
  });
}

function checkUrl(raw: string): string {
  const url = shownUrl(raw);
  if (!/^mqtts?:\/\/[^/]/.test(raw))
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `external.url: --source external needs --broker-url mqtts://HOST:8883 (or mqtt://HOST:1883)${url ? `, not "${url}"` : ''}`,
    );
  return url;
}

/** The client ids of the gateway's sessions: the configured one, then `-2`, `-3`, ... */
export function sessionClientIds(clientId: string, connections: number): string[] {
  return Array.from({ length: connections }, (_, i) => (i === 0 ? clientId : `${clientId}-${i + 1}`));
}

/** One MQTT session to the broker: its client and its acknowledgement gate. */
interface Session {
  readonly clientId: string;
  readonly gate: AckGate;
  client: MqttClient | undefined;
}

interface SessionContext {
  deps: ExternalSourceDeps;
  url: string;
  filter: string;
  stats: { acknowledged: number };
  ingestion: () => Ingestion | undefined;
}

function createSession(clientId: string, ctx: SessionContext): Session {
  const { config, log } = ctx.deps;
  const session: Session = {
    clientId,
    client: undefined,
    gate: createAckGate({
      // Well inside the 30 s keepalive: a held callback also holds back the PINGRESP (header).
      waitMs: Math.min(config.external.ackWaitMs, 15_000),
      retryBaseMs: 1000,
      retryMaxMs: 30_000,
      redeliver: () => session.client?.end(false, () => session.client?.reconnect()),
      log: log.child({ clientId }),
    }),
  };
  return session;
}

/** Connects one session and resolves once it is subscribed; on failure nothing of it stays open. */
async function openSession(session: Session, ctx: SessionContext): Promise<void> {
  const { config, registry, password } = ctx.deps;
  const log = ctx.deps.log.child({ clientId: session.clientId });
  const c = mqtt.connect(config.external.url, clientOptions(config, session.clientId, password));
  session.client = c;
  handleMessages(c, { gate: session.gate, ingestion: ctx.ingestion, registry, log });
  const { url, filter, stats } = ctx;
  try {
    await firstSession(c, url, watchSession(c, { gate: session.gate, stats, url, filter, log }));
  } catch (err) {
    session.client = undefined;
    await c.endAsync(true);
    throw err;
  }
}

export function createExternalSource(deps: ExternalSourceDeps): ExternalSource {
  const { config } = deps;
  const url = checkUrl(config.external.url);
  const stats = { acknowledged: 0 };
  let ingestion: Ingestion | undefined;
  const ctx = { deps, url, filter: sharedFilter(config.external.group), stats, ingestion: () => ingestion };
  const sessions = sessionClientIds(config.external.clientId, config.external.connections).map((id) =>
    createSession(id, ctx),
  );
  const sightings =
    deps.onSighting &&
    createSightings({
      url: config.external.url,
      options: clientOptions(config, config.external.clientId, deps.password),
      registry: deps.registry,
      onSighting: deps.onSighting,
      log: deps.log,
    });
  const down = () => sessions.filter((s) => !s.client?.connected).length;
  const sum = (key: keyof AckGateStats) => sessions.reduce((n, s) => n + s.gate.stats[key], 0);
  const stop = async () => {
    ingestion = undefined;
    await sightings?.stop();
    const open = sessions.map((s) => {
      const c = s.client;
      s.client = undefined;
      s.gate.stop();
      // A normal DISCONNECT keeps the session: what is not acknowledged is sent again next time.
      return c?.endAsync(false);
    });
    await Promise.all(open);
  };

  return {
    name: 'external',
    url,
    connectedClients: null,
    connectedDevices: () => null,
    get connected() {
      return down() === 0;
    },
    get stats() {
      return { ...stats, withheld: sum('withheld'), redeliveries: sum('redeliveries') };
    },
    notReady: () =>
      down() === 0
        ? undefined
        : `${down()} of ${sessions.length} sessions not connected to the external broker at ${url}`,
    isBackedUp: () => false,
    async start(consumer) {
      ingestion = consumer;
      const opened = await Promise.allSettled(sessions.map((s) => openSession(s, ctx)));
      const failed = opened.find((o) => o.status === 'rejected');
      if (!failed) return sightings?.start();
      await stop();
      throw failed.reason;
    },
    stop,
    async publish(topic, payload, opts = {}) {
      const c = sessions.find((s) => s.client?.connected)?.client ?? sessions[0]?.client;
      if (!c) return;
      await c.publishAsync(topic, payload, {
        qos: opts.qos ?? 0,
        retain: opts.retain ?? false,
        properties: { userProperties: { [ORIGIN_PROPERTY]: ORIGIN_GATEWAY } },
      });
    },
  };
}
