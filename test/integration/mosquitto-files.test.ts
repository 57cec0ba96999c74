// Debian's Mosquitto 2.0 loading the password_file and acl_file the gateway writes from its
// registry (`livinglab broker mosquitto`, `serve --mosquitto-sync`): devices log in with their
// registry passwords and reach their own topics only, staff read, and a device removed from the
// registry is refused once Mosquitto has reloaded.
import { spawnSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDevice, removeDevice } from '../../src/registry/edit.js';
import { runCli } from '../helpers/cli.js';
import { useLab } from '../helpers/fixture.js';
import { PASSWORD } from '../helpers/gateway.js';
import { startMosquitto } from '../helpers/mosquitto-acl.js';
import { collect, connackCode, connectDevice, eventually, mosquittoPub } from '../helpers/mqtt.js';

const lab = useLab({
  devices: [
    { id: 'mq-1', type: 'thermometer', site: 'mq' },
    { id: 'mq-2', type: 'thermometer', site: 'mq' },
  ],
  staff: ['mq-staff'],
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'll-mosq-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A `$7$` hash with a 16-byte salt (what the gateway wrote before): Mosquitto 2.0 cannot read it. */
function sixteenByteSaltHash(password: string): string {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, 10, 64, 'sha512');
  return `$7$10$${salt.toString('base64')}$${hash.toString('base64')}`;
}

const pub = (port: number, user: string, topic: string, message: string) =>
  mosquittoPub(
    ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-q', '1', '-u', user, '-P', PASSWORD].concat([
      '-t',
      topic,
      '-m',
      message,
    ]),
  );

describe('livinglab broker mosquitto --out DIR', () => {
  it("Mosquitto lets a device publish on its own topic (staff see it) and refuses another device's topic", {
    timeout: 60_000,
  }, async () => {
    await lab.gw.editRegistry((d) =>
      addDevice(d, {
        ...{ id: 'mq-old', type: 'thermometer', site: 'mq', schemaVersion: 1, vendor: 'acme' },
        passwordHash: sixteenByteSaltHash(PASSWORD),
      }),
    );
    const out = join(dir, 'cli');
    const cli = await runCli(['broker', 'mosquitto', '--out', out, '--registry', lab.gw.registryFile]);
    expect(cli.code).toBe(0);
    expect(cli.stderr).toContain('mq-old left out of password_file');
    const passwords = await readFile(join(out, 'password_file'), 'utf8');
    expect(
      passwords
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(':')[0]),
    ).toEqual(['mq-1', 'mq-2', 'mq-staff']);
    expect((await stat(join(out, 'acl_file'))).mode & 0o777).toBe(0o640);

    const mosq = await startMosquitto(out, join(out, 'mosquitto.pid'));
    const staff = await connectDevice(mosq.url, 'mq-staff');
    const seen = await collect(staff, 'lab/#', 1);
    const own = 'lab/mq/thermometer/mq-1/telemetry';
    expect((await pub(mosq.port, 'mq-1', own, '{"n":1}')).stderr).toBe('');
    const refused = await pub(mosq.port, 'mq-1', 'lab/mq/thermometer/mq-2/telemetry', '{"n":2}');
    expect(refused.stderr).toContain('Not authorized');
    // A marker after the refused publishes: had they been forwarded, they would have come before it.
    const device = await connectDevice(mosq.url, 'mq-1', { protocolVersion: 4 });
    await device.publishAsync(own, '{"n":4}', { qos: 1 });
    await device.endAsync();
    const got = await seen.next(2);
    expect(got.map((m) => [m.topic, m.payload.toString()])).toEqual([
      [own, '{"n":1}'],
      [own, '{"n":4}'],
    ]);
    await staff.endAsync();
    // Staff read only (after the subscriber: with use_username_as_clientid a second session of the
    // same account takes over the first).
    expect((await pub(mosq.port, 'mq-staff', own, '{"n":3}')).stderr).toContain('Not authorized');
    // Left out of the file, the old hash cannot log in; nor can a wrong password.
    expect(await connackCode(mosq.url, { username: 'mq-old', password: PASSWORD, clientId: 'mq-old' })).toBe(
      5,
    );
    expect(await connackCode(mosq.url, { username: 'mq-2', password: 'wrong', clientId: 'mq-2' })).toBe(5);
  });

  it('names a folder it cannot write (LL_MOSQUITTO_FILES_FAILED, exit status 2)', async () => {
    const file = join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    const cli = await runCli([
      'broker',
      'mosquitto',
      '--out',
      join(file, 'sub'),
      '--registry',
      lab.gw.registryFile,
    ]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(
      `cannot write Mosquitto's password_file and acl_file into ${join(file, 'sub')}`,
    );
  });
});

describe('serve --mosquitto-sync DIR --mosquitto-pid-file FILE', () => {
  it('a device removed from the registry can no longer connect once Mosquitto got SIGHUP', {
    timeout: 60_000,
  }, async () => {
    const syncDir = join(dir, 'sync');
    const pidFile = join(dir, 'mosquitto.pid');
    // A pid that named a process which has exited: the gateway warns and still writes the files.
    const dead = spawnSync('true').pid;
    await writeFile(pidFile, `${dead}\n`);
    const gw = await lab.startGateway({
      devices: [{ id: 'mq-3', type: 'thermometer', site: 'mq' }],
      config: { mosquitto: { syncDir, pidFile } },
    });
    const warned = gw.logLines().find((l) => String(l.msg).includes('not reloaded'));
    expect(String(warned?.msg)).toContain(`pid ${dead} in ${pidFile} names no running process`);

    const mosq = await startMosquitto(syncDir, pidFile);
    const login = { username: 'mq-3', password: PASSWORD, clientId: 'mq-3' };
    expect(await connackCode(mosq.url, login)).toBe(0);
    const signals = gw.app.externalBroker.mosquittoSync.stats.signals;
    await gw.editRegistry((d) => removeDevice(d, 'mq-3'));
    await eventually(
      async () => gw.app.externalBroker.mosquittoSync.stats.signals,
      (n) => n > signals,
    );
    expect(await readFile(join(syncDir, 'password_file'), 'utf8')).not.toContain('mq-3:');
    expect(
      await eventually(
        () => connackCode(mosq.url, login),
        (code) => code !== 0,
      ),
    ).toBe(5);
  });

  it('refuses to start when the folder cannot be written (LL_MOSQUITTO_FILES_FAILED)', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'x');
    await expect(
      lab.startGateway({ config: { mosquitto: { syncDir: join(file, 'sub') } } }),
    ).rejects.toMatchObject({ code: 'LL_MOSQUITTO_FILES_FAILED' });
  });
});
