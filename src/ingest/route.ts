// Pure: a topic to a Route. The broker's ACL has already checked that the topic lies under the
// publishing device's own prefix; this decides the channel and the schema.
import type { Device } from '../registry/types.js';
import type { DeviceSchema, ReadingChannel, SchemaSet } from '../schemas/types.js';
import { type Rejection, rejection } from './record.js';

/** A topic's last segment: the reading channels plus `status` (retained connection state). */
export type Channel = ReadingChannel | 'status';

export type Route =
  | { readonly channel: ReadingChannel; readonly device: Device; readonly schema: DeviceSchema }
  | { readonly channel: 'status'; readonly device: Device };

const CHANNELS = new Set(['telemetry', 'event', 'status']);

export function parseTopic(topic: string, device: Device, schemas: SchemaSet): Route | Rejection {
  const parts = topic.split('/');
  const [root, site, type, id, channel] = parts;
  if (
    parts.length !== 5 ||
    root !== 'lab' ||
    site !== device.site ||
    type !== device.type ||
    id !== device.id
  ) {
    return rejection(
      'topic',
      `topic must be lab/${device.site}/${device.type}/${device.id}/{telemetry|event|status}`,
    );
  }
  if (!channel || !CHANNELS.has(channel)) {
    return rejection('topic', `unknown channel "${channel ?? ''}"; use telemetry, event or status`);
  }
  if (channel === 'status') return { channel, device };
  const schema = schemas.get(device.type, device.schemaVersion);
  if (!schema) {
    return rejection(
      'topic',
      `no schema ${device.type}@${device.schemaVersion} is loaded on the gateway; ask the lab`,
    );
  }
  if (schema.channel !== channel) {
    return rejection(
      'topic',
      `${schema.key} messages are published on .../${schema.channel}, not .../${channel}`,
      {
        schema: schema.key,
      },
    );
  }
  return { channel: schema.channel, device, schema };
}
