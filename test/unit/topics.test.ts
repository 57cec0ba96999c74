// The topic layout has one owner: what it builds, route and ACL accept and recordings replay.
import { describe, expect, it } from 'vitest';
import { canPublish, canSubscribe, type Identity } from '../../src/registry/acl.js';
import {
  deviceTopic,
  parseReadingTopic,
  rejectedTopic,
  splitTopic,
  statusTopic,
  topicTemplate,
} from '../../src/registry/topics.js';
import type { Device } from '../../src/registry/types.js';

const where = { site: 'oslo-1', type: 'pulse-oximeter', id: 'ox-7' };

describe('topics', () => {
  it('builds every channel of a device under its own prefix', () => {
    expect(deviceTopic(where, 'telemetry')).toBe('lab/oslo-1/pulse-oximeter/ox-7/telemetry');
    expect(statusTopic(where)).toBe('lab/oslo-1/pulse-oximeter/ox-7/status');
    expect(rejectedTopic(where)).toBe('lab/oslo-1/pulse-oximeter/ox-7/rejected');
    expect(topicTemplate('event', { type: 'door' })).toBe('lab/{site}/door/{deviceId}/event');
  });

  it('parses what it builds, and only well-formed reading topics', () => {
    expect(splitTopic(deviceTopic(where, 'event'))).toEqual({ ...where, channel: 'event' });
    expect(splitTopic('lab/a/b/c')).toBeUndefined();
    expect(splitTopic('other/a/b/c/telemetry')).toBeUndefined();
    expect(parseReadingTopic(deviceTopic(where, 'telemetry'))).toEqual({ ...where, channel: 'telemetry' });
    expect(parseReadingTopic(statusTopic(where))).toBeUndefined();
    expect(parseReadingTopic('lab/Oslo/pulse-oximeter/ox-7/telemetry')).toBeUndefined();
  });

  it('agrees with the ACL: a device publishes its built topics but never its rejected one', () => {
    const device = { ...where, enabled: true } as unknown as Device;
    const identity: Identity = { kind: 'device', id: where.id, device };
    expect(canPublish(identity, deviceTopic(where, 'telemetry')).allow).toBe(true);
    expect(canPublish(identity, statusTopic(where)).allow).toBe(true);
    expect(canPublish(identity, rejectedTopic(where)).allow).toBe(false);
    expect(canSubscribe(identity, rejectedTopic(where)).allow).toBe(true);
  });
});
