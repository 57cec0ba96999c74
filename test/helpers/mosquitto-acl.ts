// Debian's Mosquitto 2.0 (/usr/sbin/mosquitto) on a free loopback port, loading the password_file and
// acl_file the gateway writes, with the settings README "Broker authentication hooks" asks for. Its
// log is kept for failure messages; it is stopped where it is started (onTestFinished).
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { freePort } from './ports.js';

export interface Mosquitto {
  url: string;
  port: number;
  pid: number;
  output(): string;
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Starts Mosquitto with `dir`'s password_file and acl_file, writing its pid to `pidFile`. */
export async function startMosquitto(dir: string, pidFile: string): Promise<Mosquitto> {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous false',
    `password_file ${join(dir, 'password_file')}`,
    `acl_file ${join(dir, 'acl_file')}`,
    'use_username_as_clientid true',
    `pid_file ${pidFile}`,
    'persistence false',
    'log_dest stderr',
    'log_type all',
    // Run as root (a container), Mosquitto would switch to the `mosquitto` user, which cannot read
    // files the test wrote 0640 as root.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
  ];
  await writeFile(conf, `${lines.join('\n')}\n`);
  let out = '';
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  onTestFinished(() => stop(child));
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `mqtt://127.0.0.1:${port}`, port, pid: child.pid ?? 0, output: () => out };
}
