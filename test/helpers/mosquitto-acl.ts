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
  /** The gateways' listener (opts.gatewayListener), without use_username_as_clientid; else `url`. */
  gatewayUrl: string;
  pid: number;
  output(): string;
  /** Stops it (needed only with `keep`: else it stops when its test finishes). */
  stop(): Promise<void>;
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

/**
 * Starts Mosquitto with `dir`'s password_file and acl_file, writing its pid to `pidFile`. With
 * `gatewayListener`, a second loopback listener for the gateways, where client ids are kept (README,
 * "Scaling past one machine"): a gateway's several sessions need one client id each.
 */
export async function startMosquitto(
  dir: string,
  pidFile: string,
  opts: { gatewayListener?: boolean; conf?: string[]; keep?: boolean } = {},
): Promise<Mosquitto> {
  const port = await freePort();
  const gatewayPort = opts.gatewayListener ? await freePort() : port;
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    'allow_anonymous false',
    `password_file ${join(dir, 'password_file')}`,
    `acl_file ${join(dir, 'acl_file')}`,
    `listener ${port} 127.0.0.1`,
    'use_username_as_clientid true',
    ...(opts.gatewayListener ? [`listener ${gatewayPort} 127.0.0.1`] : []),
    `pid_file ${pidFile}`,
    'persistence false',
    // What a gateway away for a while must get back: the default (1000) drops QoS 1 beyond it.
    ...(opts.gatewayListener ? ['max_queued_messages 0'] : []),
    ...(opts.conf ?? []),
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
  // Started in a beforeAll (`keep`), it lives for the file and its caller stops it.
  if (!opts.keep) onTestFinished(() => stop(child));
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    gatewayUrl: `mqtt://127.0.0.1:${gatewayPort}`,
    pid: child.pid ?? 0,
    output: () => out,
    stop: () => stop(child),
  };
}
