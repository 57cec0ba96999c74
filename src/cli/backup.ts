// `livinglab backup --out DIR` and `livinglab restore DIR`: what must not be lost (registry,
// secrets, audit log and head, rejects and events logs, job and liveness state, spool) copied
// beside a running gateway, and put back into an empty place (backup-files.ts, restore-files.ts).
// With --influx, InfluxDB 1.x's own portable backup and restore run too, through influxd's RPC
// address (`bind-address`, 127.0.0.1:8088 by default), which is not its HTTP port.
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { packageRoot } from '../paths.js';
import {
  type BackupWriter,
  copyAudit,
  copyDataFiles,
  copyRegistry,
  copySpool,
  createBackupWriter,
  MANIFEST,
  type Manifest,
  writeNew,
} from './backup-files.js';
import { addRegistryEditOptions, type CommonFlags, configFromFlags } from './options.js';
import { checkBackup, checkTargetsEmpty, restoreFiles } from './restore-files.js';

type Env = Record<string, string | undefined>;
type InfluxFlags = { influx?: boolean; influxRpc: string; influxd: string };

/** Runs influxd backup/restore; its own message goes into ours when it fails. */
function runInfluxd(influxd: string, args: string[], code: 'LL_BACKUP_FAILED' | 'LL_RESTORE_FAILED') {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const child = spawn(influxd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [child.stdout, child.stderr]) s.on('data', (d: Buffer) => (out = (out + d).slice(-2000)));
    const fail = (why: string) =>
      reject(
        new GatewayError(
          code,
          `\`${influxd} ${args.join(' ')}\` failed: ${why}. Check that influxd runs there with its RPC bind-address (--influx-rpc) reachable`,
        ),
      );
    child.on('error', (err) => fail(err.message));
    // influxd logs every retry: its last line says why it gave up.
    const last = () => out.trim().split('\n').at(-1) ?? '';
    child.on('exit', (status) => (status === 0 ? resolve() : fail(last() || `exit ${status}`)));
  });
}

/**
 * influxd backup retries an unreachable address for minutes, saying little: try a connection first
 * and say at once which address does not answer.
 */
function probeRpc(address: string, code: 'LL_BACKUP_FAILED' | 'LL_RESTORE_FAILED'): Promise<void> {
  const at = address.lastIndexOf(':');
  const [host, port] = [address.slice(0, at), Number(address.slice(at + 1))];
  return new Promise((resolveProbe, reject) => {
    const socket = connect({ host, port, timeout: 3000 });
    const fail = (why: string) => {
      socket.destroy();
      reject(
        new GatewayError(
          code,
          `influxd's RPC address ${address} does not answer (${why}): give its bind-address from influxdb.conf (default 127.0.0.1:8088, not the HTTP port 8086) in --influx-rpc, and check that influxd runs`,
        ),
      );
    };
    socket.once('connect', () => {
      socket.destroy();
      resolveProbe();
    });
    socket.once('timeout', () => fail('no answer within 3 s'));
    socket.once('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  });
}

async function noteFilesUnder(out: string, sub: string, w: BackupWriter): Promise<void> {
  for (const e of await readdir(join(out, sub), { withFileTypes: true, recursive: true }))
    if (e.isFile()) await w.note(relative(out, join(e.parentPath, e.name)).split(sep).join('/'));
}

/** `path` with its symbolic links resolved as far as it exists, the rest as given. */
async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch (err) {
    const parent = dirname(abs);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === abs) return abs;
    return join(await realPathOf(parent), basename(abs));
  }
}

/**
 * The data folder must exist, and the backup must not land inside it (it would copy itself): also
 * not through a symbolic link, nor in a folder whose name merely starts with "..".
 */
async function checkPlaces(dataDir: string, out: string): Promise<void> {
  const isDir = await stat(dataDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir)
    throw new GatewayError(
      'LL_BACKUP_FAILED',
      `the data folder ${dataDir} does not exist: give the gateway's --data-dir (or --config)`,
    );
  const inside = relative(await realPathOf(dataDir), await realPathOf(out));
  if (inside !== '..' && !inside.startsWith(`..${sep}`) && !isAbsolute(inside))
    throw new GatewayError(
      'LL_BACKUP_FAILED',
      `--out ${out} is inside the data folder ${dataDir}: choose a folder outside it`,
    );
}

async function emptyOutDir(out: string): Promise<void> {
  await mkdir(out, { recursive: true, mode: 0o700 });
  if ((await readdir(out)).length > 0)
    throw new GatewayError('LL_BACKUP_FAILED', `--out ${out} is not empty: give a new or empty folder`);
}

const version = async () =>
  (JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;

/** Copies everything into `out` and writes the manifest last: a backup without one is unfinished. */
async function copyAll(
  config: Config,
  out: string,
  w: BackupWriter,
  opts: InfluxFlags & { waitMs: number },
): Promise<{ segments: number; records: number }> {
  const createdAt = new Date().toISOString();
  // The spool before everything else, and InfluxDB after it: a record confirmed (and its
  // segment deleted) while the spool is copied is in InfluxDB before its backup starts.
  const spool = await copySpool(config, w);
  await copyAudit(config, w);
  await copyRegistry(config, w, opts.waitMs);
  await copyDataFiles(config, w);
  if (opts.influx) {
    await runInfluxd(
      opts.influxd,
      ['backup', '-portable', '-host', opts.influxRpc, join(out, 'influx')],
      'LL_BACKUP_FAILED',
    );
    await noteFilesUnder(out, 'influx', w);
  }
  const manifest: Manifest = {
    format: 1,
    gatewayVersion: await version(),
    createdAt,
    influx: !!opts.influx,
    files: w.files,
  };
  await writeNew(join(out, MANIFEST), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), 0o600);
  return spool;
}

function registerBackup(program: Command, env: Env): void {
  addRegistryEditOptions(
    program
      .command('backup')
      .description('copy registry, secrets, audit log, logs, state and spool (safe beside a running gateway)')
      .requiredOption('--out <dir>', 'a new or empty folder for the backup')
      .option('--influx', "also run InfluxDB's portable backup into DIR/influx")
      .option('--influx-rpc <host:port>', "influxd's RPC bind-address", '127.0.0.1:8088')
      .option('--influxd <path>', 'the influxd program', 'influxd')
      .option('--wait <duration>', 'how long to wait for a registry edit in progress', '60s'),
  ).action(async (opts: CommonFlags & InfluxFlags & { out: string; wait: string }) => {
    const { out, influx, influxRpc, influxd, wait, ...flags } = opts;
    const waitMs = parseDuration(wait);
    if (waitMs === undefined)
      throw new GatewayError('LL_INPUT_INVALID', `--wait "${wait}" is not a duration like 60s`);
    const config = configFromFlags(flags, env);
    await checkPlaces(config.dataDir, out);
    if (influx) await probeRpc(influxRpc, 'LL_BACKUP_FAILED');
    await emptyOutDir(out);
    const w = createBackupWriter(out);
    const spool = await copyAll(config, out, w, { influx, influxRpc, influxd, waitMs }).catch(
      async (err: unknown) => {
        // --out was empty: what is in it now is this backup's, unfinished (no manifest). It goes, so
        // a full disk gets its space back and nobody keeps it for a backup.
        for (const name of await readdir(out)) await rm(join(out, name), { recursive: true, force: true });
        if (err instanceof GatewayError) throw err;
        throw new GatewayError(
          'LL_BACKUP_FAILED',
          `copying into ${out} failed (${(err as Error).message}); what was copied so far was removed, so there is no backup: fix the cause (free space on that disk, or check it) and take the backup again`,
          { cause: err },
        );
      },
    );
    process.stderr.write(
      `backup in ${out}: ${w.files.length} files, spool ${spool.segments} segment(s) with ${spool.records} record(s)${influx ? ', InfluxDB' : ''}\n`,
    );
  });
}

function registerRestore(program: Command, env: Env): void {
  addRegistryEditOptions(
    program
      .command('restore <dir>')
      .description('put a backup back into an empty data folder and registry location (checks its manifest)')
      .option('--influx', "also run InfluxDB's portable restore from DIR/influx (databases must not exist)")
      .option('--influx-rpc <host:port>', "influxd's RPC bind-address", '127.0.0.1:8088')
      .option('--influxd <path>', 'the influxd program', 'influxd'),
  ).action(async (dir: string, opts: CommonFlags & InfluxFlags) => {
    const { influx, influxRpc, influxd, ...flags } = opts;
    const config = configFromFlags(flags, env);
    const manifest = await checkBackup(dir);
    await checkTargetsEmpty(config);
    if (influx) {
      if (!manifest.influx)
        throw new GatewayError(
          'LL_BACKUP_INVALID',
          `backup ${dir} has no InfluxDB backup: restore without --influx`,
        );
      await probeRpc(influxRpc, 'LL_RESTORE_FAILED');
      await runInfluxd(
        influxd,
        ['restore', '-portable', '-host', influxRpc, join(dir, 'influx')],
        'LL_RESTORE_FAILED',
      );
    }
    const n = await restoreFiles(dir, manifest, config);
    process.stderr.write(
      `restored ${n} files of the backup of ${manifest.createdAt} (gateway ${manifest.gatewayVersion}) into ${config.dataDir} and beside ${config.registry}${influx ? ', and InfluxDB' : ''}\n`,
    );
  });
}

export function registerBackupCommands(program: Command, env: Env): void {
  registerBackup(program, env);
  registerRestore(program, env);
}
