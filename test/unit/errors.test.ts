import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  it.each(Object.keys(ERROR_CODES))('docs/errors.md explains %s', (code) => {
    expect(doc).toContain(`| \`${code}\` |`);
  });
  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/\| `(LL_[A-Z_]+)` \|/g)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });
});
