// Live heap of a V8 heap snapshot (`node --heapsnapshot-signal`, which collects garbage before
// writing) by what holds the bytes: objects by constructor, closures by function name, and V8's
// own kinds (code, strings, arrays, hidden). This is how BENCHMARKS.md tells per-connection memory
// apart from garbage V8 keeps; self sizes only (retained sizes need a dominator tree).

export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

export interface HeapRow {
  /** `object:Socket`, `closure:onclose`, `string`, `code`… */
  kind: string;
  count: number;
  bytes: number;
}

export interface HeapSummary {
  bytes: number;
  nodes: number;
  rows: HeapRow[];
}

const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);
const NAMED_TYPES = new Set(['object', 'closure', 'native']);

export function kindOf(type: string, name: string): string {
  if (STRING_TYPES.has(type)) return 'string';
  if (NAMED_TYPES.has(type)) return `${type}:${name}`;
  return type;
}

/** Sums self sizes by kind, largest first. Throws on a file that is not a heap snapshot. */
export function summarizeHeap(snap: HeapSnapshot): HeapSummary {
  const fields = snap.snapshot?.meta?.node_fields;
  const types = snap.snapshot?.meta?.node_types?.[0];
  if (!Array.isArray(fields) || !Array.isArray(types) || !Array.isArray(snap.nodes))
    throw new Error('not a V8 heap snapshot (no snapshot.meta.node_fields, node_types or nodes)');
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSelf = fields.indexOf('self_size');
  if (iType < 0 || iName < 0 || iSelf < 0)
    throw new Error('heap snapshot nodes lack type, name or self_size');
  const byKind = new Map<string, HeapRow>();
  let bytes = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = String(types[snap.nodes[i + iType] as number]);
    const kind = kindOf(type, snap.strings[snap.nodes[i + iName] as number] ?? '');
    const self = snap.nodes[i + iSelf] as number;
    bytes += self;
    const row = byKind.get(kind) ?? { kind, count: 0, bytes: 0 };
    row.count++;
    row.bytes += self;
    byKind.set(kind, row);
  }
  const rows = [...byKind.values()].sort((a, b) => b.bytes - a.bytes);
  return { bytes, nodes: snap.nodes.length / width, rows };
}
