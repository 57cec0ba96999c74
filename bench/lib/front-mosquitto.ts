// Debian's Mosquitto in front of gateways in external mode (issue 19): devices log in with the
// registry's own password hashes and are held to their own topics by the password_file and acl_file
// that `livinglab broker mosquitto` writes (the built CLI, as a lab runs it); the gateways' account is
// added with mosquitto_passwd. It listens on loopback only and is stopped with its folder removed.
import { execFile, spawn } from 'node:child_process';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/helpers/ports.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const GATEWAY_USER = 'livinglab-gateways';
const GATEWAY_PASSWORD = 'bench-gateway-password';

export interface FrontMosquitto {
  /** The devices' listener. */
  readonly url: string;
  /** The gateways' listener: same files, without use_username_as_clientid. */
  readonly gatewayUrl: string;
  readonly pid: number;
  /** The gateways' account on the broker (external.username, LIVINGLAB_BROKER_PASSWORD). */
  readonly gatewayUser: string;
  readonly gatewayPassword: string;
  output(): string;
  stop(): Promise<void>;
}

export interface FrontOptions {
  /** The bench registry (lab.yaml) the password_file and acl_file are written from. */
  readonly registry: string;
  /** A folder where writeAccessFiles already wrote them (for several brokers of one registry). */
  readonly accessFiles?: string;
  /** Further mosquitto.conf lines (e.g. max_connections for the connections bench). */
  readonly conf?: readonly string[];
  /** Open-file limit the broker runs with (ulimit -n), for tens of thousands of connections. */
  readonly maxFiles?: number;
  /** Loopback address to listen on (default 127.0.0.1). */
  readonly host?: string;
}

const portOpen = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, host, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * Writes password_file and acl_file for `registry` into `dir`: the registry's devices (through the
 * built CLI) and the gateways' account. Brokers started with `accessFiles: dir` share them.
 */
export async function writeAccessFiles(registry: string, dir: string): Promise<void> {
  await run(process.execPath, [
    join(ROOT, 'bin/livinglab.js'),
    'broker',
    'mosquitto',
    '--registry',
    registry,
    '--out',
    dir,
  ]);
  await run('mosquitto_passwd', ['-b', join(dir, 'password_file'), GATEWAY_USER, GATEWAY_PASSWORD]);
  // The gateways read the devices' messages through their shared subscription and answer on
  // `rejected` (and `status`); the devices' own entries stay as the gateway wrote them.
  await appendFile(
    join(dir, 'acl_file'),
    `\nuser ${GATEWAY_USER}\ntopic read $share/+/lab/+/+/+/+\ntopic read lab/#\ntopic write lab/#\n`,
  );
}

export async function startFrontMosquitto(opts: FrontOptions): Promise<FrontMosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'll-bench-front-'));
  const host = opts.host ?? '127.0.0.1';
  const port = await freePort();
  const gatewayPort = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  let out = '';
  try {
    if (!opts.accessFiles) await writeAccessFiles(opts.registry, dir);
    const files = opts.accessFiles ?? dir;
    const access = [
      'allow_anonymous false',
      `password_file ${join(files, 'password_file')}`,
      `acl_file ${join(files, 'acl_file')}`,
    ];
    // Devices get client id = username (README); the gateways' sessions share one account under
    // client ids of their own (CLIENTID, CLIENTID-2, ...), which use_username_as_clientid would
    // collapse into one id that takes itself over: they come in on a listener of their own.
    const lines = [
      'per_listener_settings true',
      `listener ${port} ${host}`,
      ...access,
      'use_username_as_clientid true',
      `listener ${gatewayPort} ${host}`,
      ...access,
      'persistence false',
      // The gateways' sessions must not lose QoS 1 messages queued while they catch up (README,
      // "Scaling past one machine": the default 1000 drops beyond it); everything else is Debian's.
      'max_queued_messages 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      // As root (a container), Mosquitto would switch to a user that cannot read the 0640 files.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      ...(opts.conf ?? []),
    ];
    await writeFile(conf, `${lines.join('\n')}\n`);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // exec keeps the broker's own pid, so /proc figures are Mosquitto's and not a shell's.
  const limit = opts.maxFiles ? `ulimit -n ${opts.maxFiles} && ` : '';
  const child = spawn('bash', ['-c', `${limit}exec /usr/sbin/mosquitto -c '${conf}'`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise((r) => child.once('exit', r));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(host, port)) || !(await portOpen(host, gatewayPort))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`mosquitto did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://${host}:${port}`,
    gatewayUrl: `mqtt://${host}:${gatewayPort}`,
    pid: child.pid ?? 0,
    gatewayUser: GATEWAY_USER,
    gatewayPassword: GATEWAY_PASSWORD,
    output: () => out,
    stop,
  };
}
