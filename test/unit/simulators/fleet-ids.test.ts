// Fleet ids obey the registry's identifier rule (src/registry/ids.ts): a fleet either yields ids the
// registry accepts or is refused when it is loaded, with the fleet file named.
import { describe, expect, it } from 'vitest';
import { parseFleet } from '../../../simulators/fleet.js';
import { addDevice } from '../../../src/registry/edit.js';
import { SEGMENT_MAX_LENGTH } from '../../../src/registry/ids.js';
import { EMPTY_REGISTRY } from '../../../src/registry/types.js';

const fleetWith = (site: string, type: string, resident = 'p-1') => `
name: ids
seed: 1
start: 2026-11-02T00:00:00Z
duration: 1h
sites:
  - id: ${site}
    residents:
      - id: ${resident}
        devices:
          - { type: ${type} }
          - { type: ${type} }
`;

const registryAccepts = (id: string, site: string, subject: string) =>
  addDevice(EMPTY_REGISTRY, {
    id,
    type: 'pulse-oximeter',
    schemaVersion: 1,
    site,
    vendor: 'simulator',
    subject,
    passwordHash: '$7$x',
  });

describe('fleet identifiers', () => {
  it('loads a fleet with a 41-character site id (the old fleet limit), and the registry takes its device ids', () => {
    const site = `h${'x'.repeat(40)}`;
    const fleet = parseFleet(fleetWith(site, 'pulse-oximeter'), 'old-limit.yaml');
    expect(fleet.devices.map((d) => d.id)).toEqual([`${site}-pulse-oximeter`, `${site}-pulse-oximeter-2`]);
    for (const d of fleet.devices) expect(() => registryAccepts(d.id, d.site, d.resident)).not.toThrow();
  });

  it('takes a 63-character site id as the registry does, and refuses the device ids it would derive', () => {
    const site = 'h'.repeat(SEGMENT_MAX_LENGTH);
    expect(() => registryAccepts('d1', site, 'p-1')).not.toThrow();
    expect(() => parseFleet(fleetWith(site, 'pulse-oximeter'), 'long-site.yaml')).toThrow(
      /long-site\.yaml: device id h+-pulse-oximeter \(site \+ type\) must be 1–63 characters/,
    );
  });

  it('refuses a site id one character over the segment rule, naming the fleet file', () => {
    const site = 'h'.repeat(SEGMENT_MAX_LENGTH + 1);
    expect(() => parseFleet(fleetWith(site, 'pulse-oximeter'), 'too-long.yaml')).toThrow(
      /too-long\.yaml:7: sites\.0\.id: must match pattern/,
    );
  });

  it('refuses a fleet whose derived device id would be 64 characters, naming the file and the id', () => {
    const type = 'pulse-oximeter';
    // site + "-" + type + "-2" is one over the limit for the second device of that type.
    const site = 'h'.repeat(SEGMENT_MAX_LENGTH - type.length - 1 - 2 + 1);
    expect(`${site}-${type}`.length).toBeLessThanOrEqual(SEGMENT_MAX_LENGTH);
    let message = '';
    try {
      parseFleet(fleetWith(site, type), 'edge.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      `edge.yaml: device id ${site}-${type}-2 (site + type) must be 1–63 characters of a–z, 0–9 and "-", ` +
        'starting with a letter or digit; shorten the site id or prefix',
    );
  });

  it('checks a generated home prefix through the device ids it yields, and the registry takes its codes', () => {
    const text = (prefix: string) => `
name: gen
seed: 1
start: 2026-11-02T00:00:00Z
duration: 1h
generate:
  homes: 10
  prefix: ${prefix}
  devices: [{ type: pulse-oximeter }]
`;
    // "{prefix}-10-pulse-oximeter": 63 characters with a 45-character prefix, 64 with 46.
    const fits = parseFleet(text('g'.repeat(45)), 'gen.yaml');
    for (const d of fits.devices) expect(() => registryAccepts(d.id, d.site, d.resident)).not.toThrow();
    expect(() => parseFleet(text('g'.repeat(46)), 'gen.yaml')).toThrow(
      /^gen\.yaml: device id g{46}-01-pulse-oximeter \(site \+ type\)/,
    );
  });
});
