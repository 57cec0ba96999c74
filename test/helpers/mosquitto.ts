// A real Mosquitto 2.0 (Debian's /usr/sbin/mosquitto) on a free loopback port, with anonymous
// logins off and a password file made by mosquitto_passwd -b: the external broker of the tests of
// `--source external`. It never mocks the broker; stop() kills it and removes its folder.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface Mosquitto {
  readonly url: string;
  readonly port: number;
  /** What the broker wrote to stderr (its log). */
  output(): string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts Mosquitto with these users (name → password) and any extra configuration lines. */
export async function startMosquitto(opts: {
  users: Record<string, string>;
  conf?: string[];
}): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'll-mosquitto-'));
  const passwords = join(dir, 'passwd');
  await writeFile(passwords, '', { mode: 0o600 });
  for (const [user, password] of Object.entries(opts.users))
    await run('mosquitto_passwd', ['-b', passwords, user, password]);
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${passwords}`,
      // Started as root here: stay root so the broker can read its files in the test's folder.
      'user root',
      'persistence false',
      // What a gateway away for a while must get back: the default (1000) drops QoS 1 beyond it.
      'max_queued_messages 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      ...(opts.conf ?? []),
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const output = () => log;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForPort(port, child, output);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    output,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null) child.kill('SIGTERM');
        await exited;
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
