// Secrets out of lab.yaml (issue 16): the CLI writes every secret to lab.secrets.yaml and none to
// lab.yaml; an older lab.yaml with secrets inside is migrated by `serve` and by `registry migrate`
// without a pseudonym changing; a lost or readable secrets file is loud. Real gateways (buildApp)
// on a real influxd, real MQTT.js clients, the real CLI.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildApp } from '../../src/app.js';
import { type ConfigInput, loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { readRegistryFile, serialiseRegistry, writeRegistryFile } from '../../src/registry/file.js';
import { hashSecretSync } from '../../src/registry/passwords.js';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { readSecretsFile, writeSecretsFile } from '../../src/registry/secrets-file.js';
import { EMPTY_REGISTRY, type RegistryData } from '../../src/registry/types.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD, withDevices } from '../helpers/gateway.js';
import { connackCode, connectDevice, eventually } from '../helpers/mqtt.js';
import { ndjson, openProject } from '../helpers/research.js';

const lab = useLab();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function labDir(): Promise<{ dir: string; reg: string; secrets: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'll-secrets-'));
  dirs.push(dir);
  return { dir, reg: join(dir, 'lab.yaml'), secrets: join(dir, 'lab.secrets.yaml') };
}

/** A gateway on the registry already in `dir` (what `livinglab serve` does on a restart). */
async function startOn(dir: string, db: string, extra: ConfigInput = {}) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const config = loadConfig({
    flags: {
      registry: join(dir, 'lab.yaml'),
      dataDir: join(dir, 'data'),
      registryPoll: '100ms',
      mqtt: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1' },
      influx: { url: lab.influx.url, db },
      writer: { flushInterval: '50ms' },
      ...extra,
    },
  });
  const app = buildApp(config, { log: createLogger({ level: 'debug', destination: sink }) });
  onTestFinished(() => app.stop());
  await app.start();
  return {
    app,
    lines,
    http: `http://127.0.0.1:${app.httpPort}`,
    mqtt: `mqtt://127.0.0.1:${app.mqttPort}`,
  };
}

const TWO_BEDS = [
  { id: 'bed-1', type: 'bed-sensor', site: 'home-1', subject: 'p-1' },
  { id: 'bed-2', type: 'bed-sensor', site: 'home-2', subject: 'p-2' },
];

/** Two bed sensors, a project both consented to and a token for it: the registry a lab has. */
function researchRegistry(): { data: RegistryData; token: string } {
  let data = addProject(withDevices(EMPTY_REGISTRY, TWO_BEDS), openProject('sleep', ['bed-sensor']));
  data = setConsent(data, 'sleep', 'p-1', { on: openProject('sleep', []).from });
  data = setConsent(data, 'sleep', 'p-2', { on: openProject('sleep', []).from });
  const issued = issueToken(data, {
    project: 'sleep',
    researcher: 'ann',
    expires: new Date(Date.now() + 86_400_000),
  });
  return { data: issued.data, token: issued.token };
}

/** Three hourly readings from each bed sensor, acknowledged (QoS 1). */
async function publishBeds(mqttUrl: string): Promise<void> {
  const start = Date.now() - 3 * 3_600_000;
  for (const [i, bed] of TWO_BEDS.entries()) {
    const c = await connectDevice(mqttUrl, bed.id);
    const readings = Array.from({ length: 3 }, (_, h) => ({
      ts: new Date(start + h * 3_600_000 + i * 1000).toISOString(),
      occupied: true,
      heartRate: 50 + h + i,
      respirationRate: 12,
    }));
    await c.publishAsync(`lab/${bed.site}/bed-sensor/${bed.id}/telemetry`, JSON.stringify({ readings }), {
      qos: 1,
    });
    await c.endAsync();
  }
}

const exportRows = async (http: string, token: string) => {
  const res = await fetch(`${http}/api/v1/projects/sleep/readings?type=bed-sensor&format=ndjson`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return ndjson(res);
};

/** Every secret value the registry holds, as written to the secrets file. */
function secretValues(data: RegistryData): string[] {
  return [
    ...data.devices.map((d) => d.passwordHash),
    ...data.accounts.map((a) => a.passwordHash),
    ...data.projects.map((p) => p.secret),
    ...data.tokens.map((t) => t.hash),
  ];
}

describe('lab.yaml holds no secret', () => {
  it('after devices, accounts, projects, consents, tokens and a new password are made with the CLI', async () => {
    const { reg, secrets } = await labDir();
    // Registry edits append to the audit log of the data folder: the lab's own, never the repository's.
    const r = (args: string[]) =>
      runCli([...args, '--registry', reg, '--data-dir', join(dirname(reg), 'data')]);
    const add = await r([
      'devices',
      'add',
      '--id',
      'ox-1',
      '--type',
      'pulse-oximeter',
      '--site',
      'home-1',
      '--vendor',
      'acme',
      '--subject',
      'p-1',
    ]);
    const staff = await r(['accounts', 'add', '--id', 'staff-1']);
    const project = await r([
      'projects',
      'add',
      'spo2',
      '--from',
      '2026-01-01',
      '--to',
      '2026-12-31',
      '--types',
      'pulse-oximeter',
    ]);
    const consent = await r(['projects', 'consent', 'spo2', '--subject', 'p-1', '--date', '2026-01-01']);
    const token = await r(['tokens', 'issue', '--project', 'spo2', '--researcher', 'ann']);
    const passwd = await r(['devices', 'passwd', 'ox-1']);
    for (const run of [add, staff, project, consent, token, passwd]) expect(run.code, run.stderr).toBe(0);

    const text = await readFile(reg, 'utf8');
    const data = await readRegistryFile(reg);
    const values = secretValues(data);
    expect(values).toHaveLength(4);
    const printed = [add, staff, token, passwd].map((run) => run.stdout.trim());
    for (const secret of [...values, ...printed]) {
      expect(secret.length).toBeGreaterThan(15);
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/^\s*(passwordHash|secret|hash):|\$7\$/m);
    // ... and every one of them is in the secrets file, which only its owner may read.
    const secretsText = await readFile(secrets, 'utf8');
    for (const secret of values) expect(secretsText).toContain(secret);
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect((await readSecretsFile(secrets))?.auditKey).toMatch(/^[0-9a-f]{64}$/);
    // Six CLI runs, each a cold start from source on a shared machine.
  }, 120_000);
});

describe('the secrets file given by path', () => {
  it('is where LIVINGLAB_SECRETS_FILE says (a mounted container secret), not beside lab.yaml', async () => {
    const { dir, reg, secrets } = await labDir();
    const elsewhere = join(dir, 'run-secrets', 'livinglab');
    const args = ['devices', 'add', '--registry', reg, '--id', 'ox-1', '--type', 'pulse-oximeter'];
    const add = await runCli([...args, '--site', 'home-1', '--vendor', 'acme'], {
      // The audit log of the lab's own data folder, never the repository's.
      env: { LIVINGLAB_SECRETS_FILE: elsewhere, LIVINGLAB_DATA_DIR: join(dir, 'data') },
    });
    expect(add.code, add.stderr).toBe(0);
    expect(existsSync(secrets)).toBe(false);
    expect(statSync(elsewhere).mode & 0o777).toBe(0o600);
    const data = await readRegistryFile(reg, elsewhere);
    expect(await readFile(elsewhere, 'utf8')).toContain(data.devices[0]?.passwordHash);
    expect(await readFile(reg, 'utf8')).not.toContain('$7$');
  });
});

describe('a secrets file that group or others can read', () => {
  it('is refused by the CLI and by the gateway, naming the file and the chmod 600 fix', async () => {
    const { dir, reg, secrets } = await labDir();
    await writeRegistryFile(reg, withDevices(EMPTY_REGISTRY, TWO_BEDS));
    await chmod(secrets, 0o644);
    const list = await runCli(['devices', 'list', '--registry', reg]);
    expect(list.code).toBe(2);
    expect(list.stderr).toContain(`secrets file ${secrets} can be read by group or others (mode 0644)`);
    expect(list.stderr).toContain(`chmod 600 ${secrets}`);
    await expect(startOn(dir, 'unused')).rejects.toThrow(`run \`chmod 600 ${secrets}\``);
  });
});

/** A lab with readings and a project, exported once, then its lab.yaml put back in the old format. */
async function legacyLab() {
  const { dir, reg, secrets } = await labDir();
  const db = `secrets_${Math.random().toString(36).slice(2, 10)}`;
  const { data, token } = researchRegistry();
  await writeRegistryFile(reg, data);
  const first = await startOn(dir, db);
  await publishBeds(first.mqtt);
  await first.app.drain.idle(10_000);
  const before = await exportRows(first.http, token);
  expect(before).toHaveLength(6);
  expect(new Set(before.map((row) => row.subject)).size).toBe(2);
  await first.app.stop();
  // The old format: every secret inline, no secrets file.
  const legacy = serialiseRegistry(data);
  const projectSecret = data.projects[0]?.secret as string;
  expect(legacy).toContain(projectSecret);
  await writeFile(reg, legacy, { mode: 0o600 });
  await rm(secrets);
  return { dir, reg, secrets, db, data, token, before, legacy, projectSecret };
}

describe('migration of a lab.yaml with secrets inside', () => {
  it('moves them out on the first start; the export after is identical, the device still logs in', async () => {
    const { dir, reg, secrets, db, data, token, before, projectSecret } = await legacyLab();
    const second = await startOn(dir, db);
    expect(second.lines).toContainEqual(
      expect.objectContaining({ msg: expect.stringContaining('moved the secrets out'), moved: 4 }),
    );
    const migrated = await readFile(reg, 'utf8');
    for (const secret of secretValues(data)) expect(migrated).not.toContain(secret);
    expect(await readFile(secrets, 'utf8')).toContain(projectSecret);
    expect(await exportRows(second.http, token)).toEqual(before);
    // The password hash came along: the device logs in with its old password.
    const login = { clientId: 'bed-1', username: 'bed-1', password: PASSWORD };
    expect(await connackCode(second.mqtt, login)).toBe(0);
  });

  it('moves them out by `registry migrate`, also after a crash midway, and again is a no-op', async () => {
    const { dir, reg, secrets, db, token, before, legacy, projectSecret } = await legacyLab();
    const migrate = await runCli(['registry', 'migrate', '--registry', reg]);
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stderr).toContain(`moved 4 secret(s) from ${reg} to ${secrets}`);
    const migrated = await readFile(reg, 'utf8');
    expect(migrated).not.toContain(projectSecret);
    const again = await runCli(['registry', 'migrate', '--registry', reg]);
    expect(again.stderr).toContain('holds no secret');
    expect(await readFile(reg, 'utf8')).toBe(migrated);
    // A crash midway through a migration: lab.yaml still has its secrets, the secrets file has them too.
    await writeFile(reg, legacy, { mode: 0o600 });
    const resumed = await runCli(['registry', 'migrate', '--registry', reg]);
    expect(resumed.stderr).toContain('moved 4 secret(s)');
    expect(await readFile(reg, 'utf8')).toBe(migrated);
    const after = await startOn(dir, db);
    expect(await exportRows(after.http, token)).toEqual(before);
  });

  it('refuses two different values for one secret, changing neither file', async () => {
    const { reg, secrets } = await labDir();
    const { data } = researchRegistry();
    await writeRegistryFile(reg, data);
    const other = 'ab'.repeat(32);
    const legacy = serialiseRegistry({
      ...data,
      projects: data.projects.map((p) => ({ ...p, secret: other })),
    });
    await writeFile(reg, legacy, { mode: 0o600 });
    const secretsBefore = await readFile(secrets, 'utf8');
    const run = await runCli(['registry', 'migrate', '--registry', reg]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`projects sleep has a secret here and a different one in ${secrets}`);
    expect(await readFile(reg, 'utf8')).toBe(legacy);
    expect(await readFile(secrets, 'utf8')).toBe(secretsBefore);
  });

  it('says what to do when the secrets file location cannot be written (a container secret)', async () => {
    const { dir, reg } = await labDir();
    await writeFile(reg, serialiseRegistry(researchRegistry().data), { mode: 0o600 });
    // /sys refuses new files even to root, like a read-only mount of /run/secrets.
    const readOnly = '/sys/ll-test-lab.secrets.yaml';
    await expect(startOn(dir, 'unused', { secretsFile: readOnly })).rejects.toThrow(
      `must move to the secrets file ${readOnly}, which cannot be written`,
    );
    await expect(startOn(dir, 'unused', { secretsFile: readOnly })).rejects.toThrow(
      'run `livinglab registry migrate',
    );
    // An edit that must write a hash there is refused the same way, with exit 2 and what to do.
    const add = await runCli([
      'accounts',
      'add',
      '--id',
      'staff-1',
      '--registry',
      reg,
      '--secrets-file',
      readOnly,
    ]);
    expect(add.code).toBe(2);
    expect(add.stderr).toContain(`cannot write the secrets file ${readOnly}`);
  });
});

describe('a lost secrets file is loud', () => {
  it('refuses the export of a project without its key, never makes a new one, keeps keyless devices out', async () => {
    const { dir, reg, secrets } = await labDir();
    const db = `secrets_${Math.random().toString(36).slice(2, 10)}`;
    const { data, token } = researchRegistry();
    await writeRegistryFile(reg, data);
    const gw = await startOn(dir, db);
    // The project's key disappears from the secrets file (a hand edit, a stale backup).
    const held = (await readSecretsFile(secrets)) ?? { sections: {} };
    await writeSecretsFile(secrets, { ...held, sections: { ...held.sections, projects: {} } });
    const refused = await eventually(
      () =>
        fetch(`${gw.http}/api/v1/projects/sleep/readings?type=bed-sensor&format=ndjson`, {
          headers: { authorization: `Bearer ${token}` },
        }),
      (res) => res.status !== 200,
    );
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toBe(
      `project sleep has no pseudonymisation secret in ${secrets}, so nothing is exported (a new secret would change every pseudonym of the project): the secrets file is missing or incomplete; lab staff: restore ${secrets} from its backup`,
    );
    const cli = await runCli(['export', '--project', 'sleep', '--type', 'bed-sensor', '--url', gw.http], {
      env: { LIVINGLAB_TOKEN: token },
    });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(
      `export refused (HTTP 503): project sleep has no pseudonymisation secret in ${secrets}`,
    );
    expect(gw.lines).toContainEqual(
      expect.objectContaining({ level: 40, projects: ['sleep'], secretsFile: secrets }),
    );
    await gw.app.stop();

    // The whole secrets file is gone: the gateway starts, names what is missing, creates nothing.
    await rm(secrets);
    const lost = await startOn(dir, db);
    expect(lost.lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        secretsFile: secrets,
        devices: ['bed-1', 'bed-2'],
        projects: ['sleep'],
        tokens: [data.tokens[0]?.id],
      }),
    );
    expect(
      await connackCode(lost.mqtt, { clientId: 'bed-1', username: 'bed-1', password: PASSWORD }),
    ).not.toBe(0);
    const res = await fetch(`${lost.http}/api/v1/projects/sleep/readings?type=bed-sensor`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toContain(
      `is not in ${secrets}, so it cannot be checked`,
    );
    expect(existsSync(secrets)).toBe(false);
    expect(await readFile(reg, 'utf8')).not.toMatch(/^\s*secret:/m);
  });
});

describe('reload', () => {
  it('picks up a password changed in the secrets file alone', async () => {
    const { dir, reg, secrets } = await labDir();
    await writeRegistryFile(reg, withDevices(EMPTY_REGISTRY, TWO_BEDS));
    const gw = await startOn(dir, `secrets_${Math.random().toString(36).slice(2, 10)}`);
    const registryText = await readFile(reg, 'utf8');
    const held = (await readSecretsFile(secrets)) ?? { sections: {} };
    const fresh = 'a new password for bed one';
    await writeSecretsFile(secrets, {
      ...held,
      sections: {
        ...held.sections,
        devices: { ...held.sections.devices, 'bed-1': { passwordHash: hashSecretSync(fresh, 10) } },
      },
    });
    const code = (password: string) =>
      connackCode(gw.mqtt, { clientId: 'bed-1', username: 'bed-1', password });
    expect(
      await eventually(
        () => code(fresh),
        (c) => c === 0,
      ),
    ).toBe(0);
    expect(await code(PASSWORD)).not.toBe(0);
    expect(await readFile(reg, 'utf8')).toBe(registryText);
  });
});

describe('npm run lab', () => {
  it('gives its lab folder a .gitignore that keeps the secrets file and generated passwords out of git', async () => {
    const { dir } = await labDir();
    // The lab folder's set-up as scripts/lab.sh runs it (the rest of the script starts influxd).
    const script = readFileSync(new URL('../../scripts/lab.sh', import.meta.url), 'utf8');
    const setup = /^mkdir -p "\$LAB_DIR"[\s\S]*?^IGNORE$/m.exec(script)?.[0];
    expect(setup).toBeDefined();
    execFileSync('bash', ['-euc', setup as string], { env: { ...process.env, LAB_DIR: dir } });
    execFileSync('git', ['init', '-q', dir]);
    for (const name of [
      'lab.yaml',
      'lab.secrets.yaml',
      'lab.sim-credentials.json',
      'demo-ox-0001.password',
      'lab.audit-head.json',
    ])
      await writeFile(join(dir, name), 'x');
    const status = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=all'], {
      encoding: 'utf8',
    });
    expect(status.trim().split('\n').sort()).toEqual(['?? .gitignore', '?? lab.yaml']);
  });
});
