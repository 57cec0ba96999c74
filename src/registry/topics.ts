// The topic layout, stated once: `lab/{site}/{type}/{id}/{channel}` (docs/architecture.md, "Where
// each rule lives"), its channels, a device's own prefix and its `rejected` and `status` topics,
// and the filter that reads them all.
// Pure and imports only the identifier rules, so the broker, ingestion, the command line and the
// simulators build and parse topics the same way. It never decides access (acl.ts does) nor which
// schema a topic carries (ingest/route.ts does).
import { SEGMENT_SOURCE } from './ids.js';

/** The root segment of every topic the gateway serves. */
export const TOPIC_ROOT = 'lab';
/** Every topic under the root: what staff read and `livinglab record` subscribes to by default. */
export const ALL_TOPICS = `${TOPIC_ROOT}/#`;

/** Channels a device publishes on. */
export const DEVICE_CHANNELS = ['telemetry', 'event', 'status'] as const;
/** Channels that carry readings (the ones a device schema names). */
export const READING_CHANNELS = ['telemetry', 'event'] as const;
/** The channel only the gateway publishes on: feedback about rejected messages. */
export const REJECTED_CHANNEL = 'rejected';
/** Every channel of a device's topic tree. */
export const TOPIC_CHANNELS = [...DEVICE_CHANNELS, REJECTED_CHANNEL] as const;

export type DeviceChannel = (typeof DEVICE_CHANNELS)[number];
export type ReadingChannel = (typeof READING_CHANNELS)[number];
export type TopicChannel = (typeof TOPIC_CHANNELS)[number];

/** What a topic names: the device's place in the lab. */
export type TopicDevice = { readonly site: string; readonly type: string; readonly id: string };

/** `lab/{site}/{type}/{id}/`: everything a device may publish lies under it. */
export function devicePrefix(d: TopicDevice): string {
  return `${TOPIC_ROOT}/${d.site}/${d.type}/${d.id}/`;
}

export function deviceTopic(d: TopicDevice, channel: TopicChannel): string {
  return `${devicePrefix(d)}${channel}`;
}

export const rejectedTopic = (d: TopicDevice): string => deviceTopic(d, REJECTED_CHANNEL);
export const statusTopic = (d: TopicDevice): string => deviceTopic(d, 'status');

/** The topic with placeholders, for help texts and messages (`lab/{site}/{type}/{deviceId}/…`). */
export function topicTemplate(channel: string, d: Partial<TopicDevice> = {}): string {
  return (
    devicePrefix({ site: d.site ?? '{site}', type: d.type ?? '{type}', id: d.id ?? '{deviceId}' }) + channel
  );
}

/** The five segments of a topic, unchecked: undefined when it has not exactly five or another root. */
export function splitTopic(
  topic: string,
):
  | { readonly site: string; readonly type: string; readonly id: string; readonly channel: string }
  | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== TOPIC_ROOT) return undefined;
  const [, site, type, id, channel] = parts as [string, string, string, string, string];
  return { site, type, id, channel };
}

export function isDeviceChannel(channel: string): channel is DeviceChannel {
  return (DEVICE_CHANNELS as readonly string[]).includes(channel);
}

export function isReadingChannel(channel: unknown): channel is ReadingChannel {
  return (READING_CHANNELS as readonly unknown[]).includes(channel);
}

/** A reading topic whose segments follow the identifier rules (what a recording may replay). */
const READING_TOPIC = new RegExp(
  `^${TOPIC_ROOT}/(${SEGMENT_SOURCE})/(${SEGMENT_SOURCE})/(${SEGMENT_SOURCE})/(${READING_CHANNELS.join('|')})$`,
);

export function parseReadingTopic(
  topic: string,
): (TopicDevice & { readonly channel: ReadingChannel }) | undefined {
  const m = READING_TOPIC.exec(topic);
  if (!m) return undefined;
  return { site: m[1] as string, type: m[2] as string, id: m[3] as string, channel: m[4] as ReadingChannel };
}
