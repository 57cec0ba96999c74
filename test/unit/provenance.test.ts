// Real or simulated (issue 18): how the registry reads and writes a device's provenance, which
// unmarked devices count as simulator-made, and the tag every point carries.
import { describe, expect, it } from 'vitest';
import { bundledSchemasDir } from '../../src/config/load.js';
import { toPoint } from '../../src/ingest/map.js';
import { addDevice, setDeviceProvenance } from '../../src/registry/edit.js';
import { parseRegistry, serialiseRegistry } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import {
  isUnmarkedSimulatorDevice,
  parseProvenance,
  provenanceOf,
  simulatorCredentialsFileFor,
} from '../../src/registry/provenance.js';
import { type Device, EMPTY_REGISTRY } from '../../src/registry/types.js';
import { loadSchemas } from '../../src/schemas/load.js';

const HASH = hashSecretSync('secret-secret', 10);
const registry = (provenanceLine: string) => `version: 1
sites: [{ id: odense }]
devices:
  - id: ox-1
    type: pulse-oximeter
    schemaVersion: 1
    site: odense
    vendor: acme
${provenanceLine}
`;

describe('provenance in the registry file', () => {
  it('reads an absent provenance as unset (real), and real and simulated as written', () => {
    const absent = parseRegistry(registry(''), 'lab.yaml').devices[0] as Device;
    expect(absent.provenance).toBeUndefined();
    expect(provenanceOf(absent)).toBe('real');
    expect(parseRegistry(registry('    provenance: real'), 'lab.yaml').devices[0]?.provenance).toBe('real');
    expect(parseRegistry(registry('    provenance: simulated'), 'lab.yaml').devices[0]?.provenance).toBe(
      'simulated',
    );
  });

  it('refuses any other value, naming the file, the line and the values allowed', () => {
    expect(() => parseRegistry(registry('    provenance: fake'), 'lab.yaml')).toThrow(
      /^lab\.yaml:9: .*provenance.*\(real, simulated\)/,
    );
  });

  it('writes a set provenance back and leaves an unset one out', () => {
    const data = addDevice(EMPTY_REGISTRY, {
      id: 'ox-1',
      type: 'pulse-oximeter',
      schemaVersion: 1,
      site: 'odense',
      vendor: 'acme',
      passwordHash: HASH,
    });
    expect(serialiseRegistry(data)).not.toContain('provenance');
    const simulated = setDeviceProvenance(data, 'ox-1', 'simulated');
    const text = serialiseRegistry(simulated);
    expect(text).toContain('provenance: simulated');
    expect(parseRegistry(text, 'lab.yaml').devices[0]?.provenance).toBe('simulated');
    expect(() => setDeviceProvenance(data, 'ox-9', 'real')).toThrow(/device ox-9 is not in the registry/);
  });

  it('parses what `--provenance` takes, and refuses anything else with what the two values mean', () => {
    expect(parseProvenance('real')).toBe('real');
    expect(parseProvenance('simulated')).toBe('simulated');
    expect(() => parseProvenance('synthetic')).toThrow(/provenance "synthetic" must be real .* or simulated/);
  });
});

describe('simulator-made devices of older registries', () => {
  const made = new Set(['demo-01-pulse-oximeter']);
  it('are the unmarked ones in the simulator credentials file or of the vendor "simulator"', () => {
    expect(isUnmarkedSimulatorDevice({ id: 'demo-01-pulse-oximeter', vendor: 'acme' }, made)).toBe(true);
    expect(isUnmarkedSimulatorDevice({ id: 'x-1', vendor: 'simulator' }, made)).toBe(true);
    expect(isUnmarkedSimulatorDevice({ id: 'ox-1', vendor: 'acme' }, made)).toBe(false);
  });
  it('never include a device that already says real or simulated', () => {
    expect(
      isUnmarkedSimulatorDevice(
        { id: 'demo-01-pulse-oximeter', vendor: 'simulator', provenance: 'real' },
        made,
      ),
    ).toBe(false);
    expect(isUnmarkedSimulatorDevice({ id: 'x-1', vendor: 'simulator', provenance: 'simulated' }, made)).toBe(
      false,
    );
  });
  it('are found through the credentials file beside the registry', () => {
    expect(simulatorCredentialsFileFor('/srv/lab/lab.yaml')).toBe('/srv/lab/lab.sim-credentials.json');
  });
});

describe('the provenance tag of a point', () => {
  const schemas = loadSchemas(bundledSchemasDir());
  const ox = schemas.get('pulse-oximeter', 1);
  if (!ox) throw new Error('no pulse-oximeter schema');
  const device: Device = {
    id: 'ox-1',
    type: 'pulse-oximeter',
    schemaVersion: 1,
    site: 'odense',
    vendor: 'acme',
    assignments: [{ subject: 'p-1' }],
    enabled: true,
    passwordHash: HASH,
  };
  const tagsOf = (d: Device) => {
    const p = toPoint({ ts: '2026-11-22T10:00:00Z', spo2: 97 }, 0, ox, d, new Date('2026-11-22T10:00:01Z'), {
      maxFutureMs: 300_000,
      maxAgeMs: 86_400_000,
    });
    if (!('tags' in p)) throw new Error('rejected');
    return p.tags;
  };
  it('is real for an unmarked or real device and simulated for a simulated one', () => {
    expect(tagsOf(device).provenance).toBe('real');
    expect(tagsOf({ ...device, provenance: 'real' }).provenance).toBe('real');
    expect(tagsOf({ ...device, provenance: 'simulated' }).provenance).toBe('simulated');
  });
});
