// Dependencies point one way (docs/architecture.md, Layers): nothing imports from a higher layer.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../../src/', import.meta.url).pathname;
const RANK: Record<string, number> = {
  cli: 6,
  'app.ts': 5,
  broker: 4,
  ingest: 4,
  query: 4,
  jobs: 4,
  http: 4,
  storage: 3,
  schemas: 3,
  registry: 3,
  tls: 3,
  config: 2,
  'errors.ts': 1,
  'paths.ts': 1,
  'log.ts': 1,
};
// Within one layer, only these directions are allowed (broker → ingest as types only).
const SAME_LAYER_ALLOWED = new Set(['http→query', 'schemas→registry', 'storage→schemas']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}
const areaOf = (file: string) => relative(SRC, file).split('/')[0] as string;

describe('simulators', () => {
  // They talk MQTT like any vendor device; from the gateway they use only schemas, config and the
  // registry's edit functions (to provision their devices).
  const allowed =
    /^\.\.\/src\/(schemas|config|registry)\/|^\.\.\/\.\.\/src\/(schemas|config|registry)\/|^\.\.\/(\.\.\/)?src\/errors\.js$/;
  const SIM = new URL('../../simulators/', import.meta.url).pathname;
  const offending: string[] = [];
  for (const file of files(SIM)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^import\s+(?:type\s+)?[^'"]*from\s+'(\.[^']+)'/gm)) {
      const spec = m[1] as string;
      if (spec.includes('src/') && !allowed.test(spec))
        offending.push(`${relative(SIM, file)} imports ${spec}`);
    }
  }
  it('import from the gateway only schemas, config, registry and errors', () => {
    expect(offending).toEqual([]);
  });
});

describe('layering', () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const from = areaOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'(\.[^']+)'/gm)) {
      // The command line drives the simulators (they are not part of the gateway's layers).
      if (from === 'cli' && (m[2] as string).startsWith('../../simulators/')) continue;
      const target = areaOf(join(file, '..', m[2] as string).replace(/\.js$/, '.ts'));
      if (target === from) continue;
      const rf = RANK[from];
      const rt = RANK[target];
      if (rf === undefined || rt === undefined) {
        violations.push(`${relative(SRC, file)}: unknown area ${target}`);
        continue;
      }
      const typeOnly = Boolean(m[1]);
      if (rt > rf) violations.push(`${relative(SRC, file)} imports ${m[2]} (higher layer)`);
      if (
        rt === rf &&
        !SAME_LAYER_ALLOWED.has(`${from}→${target}`) &&
        !(from === 'broker' && target === 'ingest' && typeOnly)
      ) {
        violations.push(`${relative(SRC, file)} imports ${m[2]} (same layer)`);
      }
    }
  }
  it('has no import from a higher layer or across a layer', () => {
    expect(violations).toEqual([]);
  });
});
