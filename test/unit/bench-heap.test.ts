// The heap breakdown in BENCHMARKS.md ("V8 heap flags") is computed by bench/lib/heap.ts.
import { describe, expect, it } from 'vitest';
import { type HeapSnapshot, kindOf, summarizeHeap } from '../../bench/lib/heap.js';

// The layout V8 writes: a flat array of nodes, `node_fields.length` numbers each, names by index.
const snapshot = (nodes: [type: number, name: number, self: number][]): HeapSnapshot => ({
  snapshot: {
    meta: {
      node_fields: ['type', 'name', 'id', 'self_size', 'edge_count', 'trace_node_id', 'detachedness'],
      node_types: [
        ['hidden', 'array', 'string', 'object', 'code', 'closure', 'concatenated string'],
        'string',
      ],
    },
  },
  nodes: nodes.flatMap(([type, name, self], id) => [type, name, id, self, 0, 0, 0]),
  strings: ['Socket', 'onclose', 'hello', 'Client'],
});

describe('summarizeHeap', () => {
  it('sums self sizes by constructor, closure name and V8 kind, largest first', () => {
    const s = summarizeHeap(
      snapshot([
        [3, 0, 300], // object Socket
        [3, 0, 300],
        [5, 1, 64], // closure onclose
        [2, 2, 40], // string
        [6, 2, 24], // concatenated string counts as string
        [3, 3, 200], // object Client
        [4, 2, 1000], // code, whatever its name
      ]),
    );
    expect(s.bytes).toBe(1928);
    expect(s.nodes).toBe(7);
    expect(s.rows).toEqual([
      { kind: 'code', count: 1, bytes: 1000 },
      { kind: 'object:Socket', count: 2, bytes: 600 },
      { kind: 'object:Client', count: 1, bytes: 200 },
      { kind: 'closure:onclose', count: 1, bytes: 64 },
      { kind: 'string', count: 2, bytes: 64 },
    ]);
  });

  it('names what is missing in a file that is not a heap snapshot', () => {
    expect(() => summarizeHeap({ nodes: [] } as unknown as HeapSnapshot)).toThrow(/not a V8 heap snapshot/);
    expect(kindOf('sliced string', 'x')).toBe('string');
    expect(kindOf('native', 'Node / TCP')).toBe('native:Node / TCP');
  });
});
