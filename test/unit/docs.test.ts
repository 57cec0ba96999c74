// The project documents itself (docs/architecture.md): nothing in the repository may point a reader
// to a document outside it, and every src/ path the architecture page names must exist, so the page
// cannot drift from the code silently when a file moves.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const ARCHITECTURE = 'docs/architecture.md';

/** Text files the repository tracks (committed or staged) and untracked ones not ignored. */
function repositoryFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return out
    .split('\0')
    .filter((f) => f !== '' && !f.endsWith('package-lock.json') && existsSync(`${ROOT}${f}`));
}

// Each name is split in two, so that this file does not match itself.
const OUTSIDE_NAMES = [
  ['DESI', 'GN.md'],
  ['DESI', 'GN §'],
  ['STY', 'LE.md'],
  ['../sha', 'red'],
  ['/work/sha', 'red'],
].map((parts) => parts.join(''));
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const OUTSIDE = new RegExp(OUTSIDE_NAMES.map(escapeRegExp).join('|'));

/** The src/ paths a Markdown text names: `src/...` anywhere, a file or a folder. */
function namedSrcPaths(markdown: string): string[] {
  const found = markdown.matchAll(/(?<![\w/.-])src\/[\w./-]*[\w]/g);
  return [...new Set([...found].map((m) => m[0]))];
}

describe('documentation', () => {
  it('no file in the repository refers to a document outside it', () => {
    const offending: string[] = [];
    for (const file of repositoryFiles()) {
      const text = readFileSync(`${ROOT}${file}`, 'utf8');
      if (text.includes('\0')) continue;
      text.split('\n').forEach((line, i) => {
        if (OUTSIDE.test(line)) offending.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offending).toEqual([]);
  });

  it('every src/ path named in docs/architecture.md exists', () => {
    const paths = namedSrcPaths(readFileSync(`${ROOT}${ARCHITECTURE}`, 'utf8'));
    // The page names dozens; fewer means the pattern broke, not that the page is right.
    expect(paths.length).toBeGreaterThan(30);
    expect(paths.filter((p) => !existsSync(`${ROOT}${p}`))).toEqual([]);
  });

  it('finds a path that does not exist, so a moved file fails the check above', () => {
    const named = namedSrcPaths('The spool (`src/storage/spool.ts`) and `src/app.ts`.');
    expect(named).toEqual(['src/storage/spool.ts', 'src/app.ts']);
    expect(named.filter((p) => !existsSync(`${ROOT}${p}`))).toEqual(['src/storage/spool.ts']);
  });

  it('the README points to the architecture page', () => {
    expect(readFileSync(`${ROOT}README.md`, 'utf8')).toContain(`](${ARCHITECTURE})`);
  });
});
