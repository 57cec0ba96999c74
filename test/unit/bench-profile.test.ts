// The "where the time goes" table of BENCHMARKS.md is computed from a CPU profile by bench/lib/profile.ts.
import { describe, expect, it } from 'vitest';
import { type CpuProfile, ownerOf, summarizeProfile } from '../../bench/lib/profile.js';

const frame = (functionName: string, url = '') => ({ functionName, url });

describe('ownerOf', () => {
  it('tells kernel socket work, libraries, Node core and our modules apart', () => {
    expect(ownerOf(frame('writeBuffer'))).toBe('socket writes (syscalls)');
    expect(ownerOf(frame('writev'))).toBe('socket writes (syscalls)');
    expect(ownerOf(frame('read'))).toBe('socket reads (syscalls)');
    // A JavaScript function called write is not a syscall.
    expect(ownerOf(frame('write', 'node:buffer'))).toBe('Node core: streams, buffers, events, timers, fs');
    expect(ownerOf(frame('nextBatch', 'file:///w/node_modules/aedes/lib/client.js'))).toBe(
      'aedes, mqtt-packet, qlobber and helpers',
    );
    expect(ownerOf(frame('validate28', 'file:///w/node_modules/ajv/dist/compile/index.js'))).toBe(
      'our ingest and broker hooks (incl. ajv)',
    );
    expect(ownerOf(frame('accept', 'file:///w/dist/src/ingest/pipeline.js'))).toBe(
      'our ingest and broker hooks (incl. ajv)',
    );
    expect(ownerOf(frame('commit', 'file:///w/dist/src/storage/spool.js'))).toBe(
      'our storage (spool, line protocol, drain)',
    );
    expect(ownerOf(frame('onPublish', 'file:///w/dist/src/app.js'))).toBe('our app wiring, jobs, metrics');
    expect(ownerOf(frame('request', 'file:///w/node_modules/undici/lib/x.js'))).toBe(
      'other dependencies (undici)',
    );
    expect(ownerOf(frame('(garbage collector)'))).toBe('garbage collector');
  });
});

describe('summarizeProfile', () => {
  it('gives shares of busy time, idle left out, largest first', () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(idle)') },
        { id: 2, callFrame: frame('writeBuffer') },
        { id: 3, callFrame: frame('(garbage collector)') },
      ],
      samples: [1, 2, 2, 3, 1, 2],
      timeDeltas: [500, 100, 100, 200, 500, 200],
    };
    const s = summarizeProfile(profile);
    expect(s.wallSeconds).toBeCloseTo(0.0016, 6);
    expect(s.busy).toBeCloseTo(600 / 1600, 6);
    expect(s.owners).toEqual([
      { owner: 'socket writes (syscalls)', microseconds: 400, share: 400 / 600 },
      { owner: 'garbage collector', microseconds: 200, share: 200 / 600 },
    ]);
  });
});
