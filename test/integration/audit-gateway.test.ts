// The audit log shared by a running gateway (exports) and `livinglab` commands beside it (registry
// changes): one sealed chain that verifies, and an export's `via` that no client header can change.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addProject, issueToken } from '../../src/registry/research.js';
import { secretsFileFor } from '../../src/registry/secrets-file.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { eventually } from '../helpers/mqtt.js';
import { openProject, untilTokens } from '../helpers/research.js';

const lab = useLab({});
let token = '';
beforeAll(async () => {
  await lab.gw.editRegistry((d0) => {
    const r = issueToken(addProject(d0, openProject('gait', ['pulse-oximeter'])), {
      project: 'gait',
      researcher: 'Dr. Holm',
      expires: new Date(Date.now() + 86_400_000),
    });
    token = r.token;
    return r.data;
  });
  await untilTokens(lab.gw, 1);
});

const auditFile = () => join(lab.gw.dir, 'data', 'audit.ndjson');
const entries = async () =>
  (await readFile(auditFile(), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const exportOnce = (headers: Record<string, string> = {}) =>
  fetch(
    `http://127.0.0.1:${lab.gw.app.httpPort}/api/v1/projects/gait/readings?type=pulse-oximeter&format=ndjson`,
    {
      headers: { authorization: `Bearer ${token}`, ...headers },
    },
  );
/** Resolves with the audit entries once the export `id` has its end entry. */
const untilEnded = (id: string) =>
  eventually(entries, (es) => es.some((e) => e.event === 'export-ended' && e.export === id));

describe('the audit log of a running gateway', () => {
  it('records via "api" whatever the client says in its headers', async () => {
    const res = await exportOnce({ 'x-livinglab-client': 'cli', via: 'cli', 'user-agent': 'livinglab-cli' });
    expect(res.status).toBe(200);
    await res.text();
    const id = res.headers.get('x-livinglab-export') as string;
    const mine = (await untilEnded(id)).filter((e) => e.export === id);
    expect(mine.map((e) => [e.event, e.via])).toEqual([
      ['export-started', 'api'],
      ['export-ended', 'api'],
    ]);
  });

  it('verifies with exports of the gateway and registry changes of commands run beside it, interleaved', {
    timeout: 240_000,
  }, async () => {
    const flags = ['--registry', lab.gw.registryFile, '--data-dir', join(lab.gw.dir, 'data')];
    const subjects = ['p-101', 'p-102', 'p-103'];
    const commands = Promise.all(
      subjects.map((s) => runCli(['projects', 'consent', 'gait', '--subject', s, ...flags])),
    );
    let commandsDone = false;
    void commands.finally(() => {
      commandsDone = true;
    });
    // The gateway keeps exporting for as long as the commands run, so their appends meet.
    const exporting = (async () => {
      const ids: string[] = [];
      while (!commandsDone || ids.length < 3) {
        const res = await exportOnce();
        await res.text();
        ids.push(res.headers.get('x-livinglab-export') as string);
      }
      return ids;
    })();
    const [ids, results] = await Promise.all([exporting, commands]);
    expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
    const all = await eventually(entries, (es) =>
      ids.every((id) => es.some((e) => e.event === 'export-ended' && e.export === id)),
    );
    expect(
      all
        .filter((e) => e.event === 'consent-given')
        .map((e) => e.subject)
        .sort(),
    ).toEqual(subjects);
    const firstConsent = all.findIndex((e) => e.event === 'consent-given');
    expect(all.slice(firstConsent).some((e) => ids.includes(e.export as string))).toBe(true);
    expect(all.every((e) => typeof e.mac === 'string')).toBe(true);
    const verify = await runCli(['audit', 'verify', ...flags]);
    expect(verify).toMatchObject({
      code: 0,
      stdout: `${auditFile()}: ${all.length} entries, chain intact (sealed with the audit key from line 1, head matches)\n`,
    });
    // A cut-off end of that same log is caught against the head beside the registry.
    const text = await readFile(auditFile(), 'utf8');
    await writeFile(auditFile(), `${text.trim().split('\n').slice(0, -1).join('\n')}\n`);
    const cut = await runCli(['audit', 'verify', ...flags]);
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain(`the last 1 entries were cut off`);
  });

  it('refuses exports (503) when the audit key is gone from the secrets file, never starting a new chain', async () => {
    const gw = await lab.startGateway();
    let token2 = '';
    await gw.editRegistry((d0) => {
      const r = issueToken(addProject(d0, openProject('keyless', ['pulse-oximeter'])), {
        project: 'keyless',
        researcher: 'Dr. Holm',
        expires: new Date(Date.now() + 86_400_000),
      });
      token2 = r.token;
      return r.data;
    });
    await untilTokens(gw, 1);
    const secrets = secretsFileFor(gw.registryFile);
    const text = await readFile(secrets, 'utf8');
    expect(text).toMatch(/^auditKey: [0-9a-f]{64}$/m);
    await writeFile(secrets, text.replace(/^auditKey: .*\n/m, ''), { mode: 0o600 });
    const res = await fetch(
      `http://127.0.0.1:${gw.app.httpPort}/api/v1/projects/keyless/readings?type=pulse-oximeter`,
      { headers: { authorization: `Bearer ${token2}` } },
    );
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toContain('the secrets file (audit key)');
    expect(await readFile(join(gw.dir, 'data', 'audit.ndjson'), 'utf8').catch(() => 'none')).toBe('none');
    const logged = gw.logLines().find((l) => l.msg === 'audit log append failed');
    expect(JSON.stringify(logged)).toContain('has no auditKey');
  });
});
