// Device assignments (who had a device when) and one consent line per subject: the lookup, the
// edits, and lab.yaml round trips with line numbers (issue 13 #4 and #6).
import { describe, expect, it } from 'vitest';
import { subjectAt } from '../../src/registry/assignments.js';
import { addDevice, assignDevice } from '../../src/registry/edit.js';
import { parseRegistry, serialiseRegistry } from '../../src/registry/file.js';
import { addProject, setConsent } from '../../src/registry/research.js';
import { type Device, EMPTY_REGISTRY } from '../../src/registry/types.js';

const device = (assignments: Device['assignments']): Device => ({
  id: 'ox-5',
  type: 'pulse-oximeter',
  schemaVersion: 1,
  site: 'odense',
  vendor: 'acme',
  enabled: true,
  passwordHash: '$7$',
  assignments,
});
const at = (iso: string) => Date.parse(iso);
const MOVE = '2026-03-01T12:00:00.000Z';
const base = addDevice(EMPTY_REGISTRY, {
  id: 'ox-5',
  type: 'pulse-oximeter',
  schemaVersion: 1,
  site: 'odense',
  vendor: 'acme',
  subject: 'p-005',
  passwordHash: '$7$x',
});
const lineOf = (text: string, needle: string, after = 0) =>
  text.split('\n').findIndex((l, i) => i >= after && l.includes(needle)) + 1;

describe('subjectAt', () => {
  const moved = device([
    { subject: 'p-005', to: MOVE },
    { subject: 'p-006', from: '2026-03-02T00:00:00Z', to: '2026-04-01T00:00:00+02:00' },
    { subject: 'p-007', from: '2026-05-01T00:00:00Z' },
  ]);
  it.each([
    ['long before the move, with no start', '2000-01-01T00:00:00Z', 'p-005'],
    ['1 ms before the move', '2026-03-01T11:59:59.999Z', 'p-005'],
    ['at the move (the end is exclusive)', MOVE, undefined],
    ['between assignments', '2026-03-01T18:00:00Z', undefined],
    ['at the next start (inclusive)', '2026-03-02T00:00:00Z', 'p-006'],
    ['1 ms before an end given with an offset', '2026-03-31T21:59:59.999Z', 'p-006'],
    ['at that end', '2026-03-31T22:00:00Z', undefined],
    ['in the open assignment', '2030-01-01T00:00:00Z', 'p-007'],
  ])('%s', (_name, ts, expected) => {
    expect(subjectAt(moved, at(ts))).toBe(expected);
  });
  it('gives no subject to a device that was never assigned', () => {
    expect(subjectAt(device([]), at(MOVE))).toBeUndefined();
  });
});

describe('assignDevice', () => {
  it('closes the open assignment at the move and opens the next, keeping history', () => {
    const next = assignDevice(base, 'ox-5', 'p-006', '2026-03-01T13:00:00+01:00');
    expect(next.devices[0]?.assignments).toEqual([
      { subject: 'p-005', to: MOVE },
      { subject: 'p-006', from: MOVE },
    ]);
    const none = assignDevice(next, 'ox-5', undefined, '2026-04-01T00:00:00Z');
    expect(none.devices[0]?.assignments).toEqual([
      { subject: 'p-005', to: MOVE },
      { subject: 'p-006', from: MOVE, to: '2026-04-01T00:00:00.000Z' },
    ]);
    expect(assignDevice(none, 'ox-5', 'p-007', '2026-04-01T00:00:00Z').devices[0]?.assignments).toHaveLength(
      3,
    );
  });
  it('refuses to rewrite history, a no-op move and a bad time', () => {
    const next = assignDevice(base, 'ox-5', 'p-006', MOVE);
    expect(() => assignDevice(next, 'ox-5', 'p-007', '2026-02-01T00:00:00Z')).toThrow(
      /never rewrites history/,
    );
    expect(() => assignDevice(next, 'ox-5', 'p-007', MOVE)).toThrow(/never rewrites history/);
    expect(() => assignDevice(next, 'ox-5', 'p-006', '2026-05-01T00:00:00Z')).toThrow(
      /already assigned to p-006/,
    );
    const none = assignDevice(next, 'ox-5', undefined, '2026-05-01T00:00:00Z');
    expect(() => assignDevice(none, 'ox-5', undefined, '2026-06-01T00:00:00Z')).toThrow(/no one already/);
    expect(() => assignDevice(next, 'ox-5', 'p-007', '2026-05-01')).toThrow(/RFC 3339/);
    expect(() => assignDevice(next, 'nope', 'p-007', '2026-05-01T00:00:00Z')).toThrow(/not in the registry/);
  });
});

describe('assignments in lab.yaml', () => {
  it('round-trips a moved device through YAML', () => {
    const moved = assignDevice(
      assignDevice(base, 'ox-5', 'p-006', MOVE),
      'ox-5',
      undefined,
      '2026-04-01T00:00:00Z',
    );
    const text = serialiseRegistry(moved);
    expect(text).toContain('assignments:');
    expect(parseRegistry(text, 'lab.yaml')).toEqual(moved);
  });
  it('reads a legacy "subject: CODE" as one assignment with no start and no end', () => {
    const legacy = serialiseRegistry(EMPTY_REGISTRY)
      .replace(
        /devices: \[\]/,
        'devices:\n  - id: ox-5\n    type: pulse-oximeter\n    schemaVersion: 1\n    site: odense\n    vendor: acme\n    subject: p-005\n    passwordHash: $7$x',
      )
      .replace(/sites: \[\]/, 'sites:\n  - id: odense');
    const data = parseRegistry(legacy, 'lab.yaml');
    expect(data.devices[0]?.assignments).toEqual([{ subject: 'p-005' }]);
    expect(data).toEqual(base);
    expect(parseRegistry(serialiseRegistry(data), 'lab.yaml')).toEqual(base);
  });
  it('refuses overlapping assignments, naming the line of the later one', () => {
    const text = serialiseRegistry(assignDevice(base, 'ox-5', 'p-006', MOVE)).replace(
      `to: ${MOVE}`,
      'to: 2026-03-05T00:00:00Z',
    );
    const line = lineOf(text, '- subject: p-006');
    expect(line).toBeGreaterThan(0);
    expect(() => parseRegistry(text, 'lab.yaml')).toThrow(
      `lab.yaml:${line}: device ox-5: assignment p-006 (${MOVE} – open) overlaps p-005 (no start – 2026-03-05T00:00:00Z); a device has one subject at a time`,
    );
  });
  it('refuses a bad time, an end before its start, and subject next to assignments', () => {
    const moved = serialiseRegistry(assignDevice(base, 'ox-5', 'p-006', MOVE));
    const bad = moved.replace(`from: ${MOVE}`, 'from: 1 March');
    expect(() => parseRegistry(bad, 'lab.yaml')).toThrow(
      new RegExp(
        `^lab\\.yaml:${lineOf(bad, '- subject: p-006')}: device ox-5: p-006: from and to must be RFC 3339`,
      ),
    );
    const backwards = moved.replace(
      `to: ${MOVE}`,
      'from: 2026-03-02T00:00:00Z\n        to: 2026-03-01T00:00:00Z',
    );
    expect(() => parseRegistry(backwards, 'lab.yaml')).toThrow(
      /lab\.yaml:\d+: device ox-5: p-005: from .* is not before to/,
    );
    const both = moved.replace('    assignments:', '    subject: p-005\n    assignments:');
    expect(() => parseRegistry(both, 'lab.yaml')).toThrow(
      `lab.yaml:${lineOf(both, 'subject: p-005')}: device ox-5 has both subject and assignments; move the subject into assignments`,
    );
  });
});

describe('consents in lab.yaml (issue 13 #6)', () => {
  let withdrawn = addProject(EMPTY_REGISTRY, {
    id: 'sleep',
    from: '2026-01-01',
    to: '2026-12-31',
    types: ['pulse-oximeter'],
  });
  withdrawn = setConsent(withdrawn, 'sleep', 'p-003', { on: '2026-02-01' });
  withdrawn = setConsent(withdrawn, 'sleep', 'p-003', { withdraw: true, on: '2026-06-30' });
  it('refuses an active consent line beside a withdrawn one, naming both lines', () => {
    const text = serialiseRegistry(withdrawn).replace(
      '        withdrawn: 2026-06-30\n',
      '        withdrawn: 2026-06-30\n      - subject: p-003\n        from: 2026-02-01\n',
    );
    const first = lineOf(text, '- subject: p-003');
    const second = lineOf(text, '- subject: p-003', first);
    expect(second).toBeGreaterThan(first);
    expect(() => parseRegistry(text, 'lab.yaml')).toThrow(
      `lab.yaml:${second}: project sleep has a second consent line for subject p-003 (the first is at lab.yaml:${first}); keep one line per subject and project: a renewed consent replaces the withdrawn line`,
    );
  });
  it('refuses an exact duplicate and a later renewal written beside the withdrawal', () => {
    for (const extra of ['from: 2026-02-01\n        withdrawn: 2026-06-30', 'from: 2026-08-01']) {
      const text = serialiseRegistry(withdrawn).replace(
        '        withdrawn: 2026-06-30\n',
        `        withdrawn: 2026-06-30\n      - subject: p-003\n        ${extra}\n`,
      );
      expect(() => parseRegistry(text, 'lab.yaml')).toThrow(/second consent line for subject p-003/);
    }
  });
  it('accepts one line per subject, and the same subject in two projects', () => {
    let d = addProject(withdrawn, {
      id: 'falls',
      from: '2026-01-01',
      to: '2026-12-31',
      types: ['fall-detector'],
    });
    d = setConsent(d, 'falls', 'p-003', { on: '2026-03-01' });
    expect(parseRegistry(serialiseRegistry(d), 'lab.yaml')).toEqual(d);
  });
});
