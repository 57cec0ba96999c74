// `npm ci` installs exactly the lockfile: npm 11 refused ours when it lacked the optional platform
// packages of a dev dependency (issue 17). Every optional dependency of every locked package must
// have its own entry (npm resolves them for all platforms, not only this machine's), and the
// lockfile's root must state the same `engines` as package.json.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

type Entry = { optionalDependencies?: Record<string, string>; engines?: Record<string, string> };
const read = (file: string) => JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8'));
const lock = read('package-lock.json') as { packages: Record<string, Entry> };
const pkg = read('package.json') as { engines: Record<string, string> };

/** Where npm would find `dep` for the package at `at`: its own node_modules, then each parent's. */
function resolves(at: string, dep: string): boolean {
  for (let base = at; ; base = base.slice(0, base.lastIndexOf('/node_modules/'))) {
    if (lock.packages[`${base ? `${base}/` : ''}node_modules/${dep}`]) return true;
    if (!base.includes('/node_modules/')) return Boolean(lock.packages[`node_modules/${dep}`]);
  }
}

describe('package-lock.json', () => {
  it('has an entry for every optional dependency of every locked package (all platforms)', () => {
    const missing = Object.entries(lock.packages).flatMap(([at, entry]) =>
      Object.keys(entry.optionalDependencies ?? {})
        .filter((dep) => !resolves(at, dep))
        .map((dep) => `${at || '(root)'} → ${dep}`),
    );
    expect(missing).toEqual([]);
  });

  it('states the engines of package.json (Node 22 and 24, the maintained LTS lines)', () => {
    expect(pkg.engines.node).toBe('>=22');
    expect(lock.packages['']?.engines).toEqual(pkg.engines);
  });
});
