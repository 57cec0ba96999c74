// Issue 15, untested path 2 (second half): a token whose project is gone gets 403, not data.
// The registry file refuses a token naming a missing project (src/registry/file.ts), so this state
// exists only in memory (a registry built by code); authorise must still refuse it.
import { describe, expect, it } from 'vitest';
import { authorise } from '../../src/query/access.js';
import { createPasswordVerifier } from '../../src/registry/passwords.js';
import { addProject, issueToken } from '../../src/registry/research.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';

describe('authorise', () => {
  it('answers 403 for a valid token of a project that was deleted and allows it while the project exists', async () => {
    const now = Date.parse('2026-11-29T12:00:00Z');
    const withProject = addProject(EMPTY_REGISTRY, {
      id: 'gone',
      from: '2026-11-01',
      to: '2026-12-31',
      types: ['bed-sensor'],
    });
    const { data, token } = issueToken(withProject, {
      project: 'gone',
      researcher: 'r',
      expires: new Date(now + 86_400_000),
    });
    const verifier = createPasswordVerifier();
    const before = await authorise(data, verifier, `Bearer ${token}`, 'gone', now);
    expect(before).toMatchObject({ ok: true, researcher: 'r' });
    const deleted = { ...data, projects: data.projects.filter((p) => p.id !== 'gone') };
    expect(await authorise(deleted, verifier, `Bearer ${token}`, 'gone', now)).toEqual({
      ok: false,
      status: 403,
      message: 'project gone does not exist any more',
      reason: 'forbidden',
      tokenId: token.split('_')[1],
    });
  });
});
