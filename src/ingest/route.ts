// Pure: a topic to a Route. The broker's ACL has already checked that the topic lies under the
// publishing device's own prefix; this decides the channel and the schema.
import { devicePrefix, isDeviceChannel, splitTopic } from '../registry/topics.js';
import type { Device } from '../registry/types.js';
import type { DeviceSchema, ReadingChannel, SchemaSet } from '../schemas/types.js';
import { type Rejection, rejection } from './record.js';

export type Route =
  | { readonly channel: ReadingChannel; readonly device: Device; readonly schema: DeviceSchema }
  | { readonly channel: 'status'; readonly device: Device };

export function parseTopic(topic: string, device: Device, schemas: SchemaSet): Route | Rejection {
  const parts = splitTopic(topic);
  if (!parts || parts.site !== device.site || parts.type !== device.type || parts.id !== device.id) {
    return rejection('topic', `topic must be ${devicePrefix(device)}{telemetry|event|status}`);
  }
  const { channel } = parts;
  if (!isDeviceChannel(channel)) {
    return rejection('topic', `unknown channel "${channel}"; use telemetry, event or status`);
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
