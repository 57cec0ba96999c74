// Pure parts of the external source: who a message is attributed to by its topic and the registry,
// the shared-subscription filter and client ids it subscribes with, and where its password comes from.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBrokerPassword, loadConfig } from '../../src/config/load.js';
import { attributeTopic, sessionClientIds, sharedFilter } from '../../src/ingest/sources/external.js';
import { setDeviceEnabled } from '../../src/registry/edit.js';
import { toSnapshot } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { withDevices } from '../helpers/gateway.js';

const data = withDevices(EMPTY_REGISTRY, [
  { id: 'ox-1', type: 'pulse-oximeter', site: 'odense' },
  { id: 'ox-off', type: 'pulse-oximeter', site: 'odense' },
]);
const snapshot = toSnapshot(setDeviceEnabled(data, 'ox-off', false));

describe('attributeTopic: the device a topic names, checked against the registry', () => {
  it.each([
    ['lab/odense/pulse-oximeter/ox-9/telemetry', 'ox-9', 'no device ox-9 in the registry'],
    ['lab/odense/pulse-oximeter/ox-off/telemetry', 'ox-off', 'device ox-off is disabled'],
    ['lab/odense/pulse-oximeter/telemetry', '', 'topic must be lab/{site}/{type}/{id}/{channel}'],
    ['other/odense/pulse-oximeter/ox-1/telemetry', '', 'topic must be lab/{site}/{type}/{id}/{channel}'],
  ])('%s is attributed to no device (id "%s"): %s', (topic, id, reason) => {
    expect(attributeTopic(topic, snapshot)).toEqual({ kind: 'unattributed', id, reason });
  });

  it('attributes a registered, enabled device, whatever site or type the topic names (route.ts judges those)', () => {
    for (const topic of ['lab/odense/pulse-oximeter/ox-1/telemetry', 'lab/vejle/scale/ox-1/telemetry']) {
      expect(attributeTopic(topic, snapshot)).toMatchObject({
        kind: 'device',
        id: 'ox-1',
        device: { site: 'odense', type: 'pulse-oximeter' },
      });
    }
  });

  it('subscribes to every device topic of its group, with one fixed client id per session', () => {
    expect(sharedFilter('livinglab')).toBe('$share/livinglab/lab/+/+/+/+');
    expect(sessionClientIds('gw-a', 1)).toEqual(['gw-a']);
    expect(sessionClientIds('gw-a', 3)).toEqual(['gw-a', 'gw-a-2', 'gw-a-3']);
  });
});

describe('loadBrokerPassword: the environment, else external.passwordFile, never the config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'll-brokerpw-'));
  const file = join(dir, 'broker-password');
  writeFileSync(file, ' spaces kept \n', { mode: 0o600 });
  const config = loadConfig({ flags: { external: { passwordFile: file } } });

  it('prefers LIVINGLAB_BROKER_PASSWORD, else reads the file without its trailing newline', () => {
    expect(loadBrokerPassword(config, { LIVINGLAB_BROKER_PASSWORD: 'from-env' })).toBe('from-env');
    expect(loadBrokerPassword(config, {})).toBe(' spaces kept ');
    expect(loadBrokerPassword(loadConfig(), {})).toBeUndefined();
  });

  it('names an unreadable file as LL_CONFIG_INVALID', () => {
    const missing = loadConfig({ flags: { external: { passwordFile: join(dir, 'nope') } } });
    expect(() => loadBrokerPassword(missing, {})).toThrow(
      expect.objectContaining({
        code: 'LL_CONFIG_INVALID',
        message: expect.stringContaining('external.passwordFile: cannot read'),
      }),
    );
  });
});
