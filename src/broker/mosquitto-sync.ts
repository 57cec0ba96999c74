// `serve --mosquitto-sync DIR`: keeps an external Mosquitto's password_file and acl_file in step
// with the registry (registry/mosquitto-files.ts) and tells Mosquitto to reload them with SIGHUP to
// the pid in `--mosquitto-pid-file` (Mosquitto re-reads both files on SIGHUP; its `pid_file`
// option writes that file). Written at start (a folder it cannot write stops the start with
// LL_MOSQUITTO_FILES_FAILED) and after every registry reload that changes them, one write at a
// time. A missing pid file or a dead pid is a warning naming the file: the files are still right,
// and the technician is told to reload Mosquitto. It never deletes the files.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import {
  type MosquittoFiles,
  renderMosquittoFiles,
  writeMosquittoFiles,
} from '../registry/mosquitto-files.js';
import type { Registry } from '../registry/registry.js';

/** Sends SIGHUP to the pid in `pidFile`; resolves a warning when it could not. */
export async function signalMosquitto(pidFile: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch (err) {
    return `cannot read Mosquitto's pid file ${pidFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is Mosquitto running with pid_file ${pidFile}? Reload it by hand (kill -HUP <pid>)`;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1)
    return `Mosquitto's pid file ${pidFile} holds no pid ("${text.trim().slice(0, 20)}")`;
  try {
    process.kill(pid, 'SIGHUP');
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ESRCH'
      ? `pid ${pid} in ${pidFile} names no running process: Mosquitto is not running, or the pid file is stale`
      : `cannot signal pid ${pid} from ${pidFile} (${code}): run the gateway as Mosquitto's user, or reload Mosquitto by hand`;
  }
}

export interface MosquittoSync {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Rewrites and signals now (what a registry change does); resolves when done. */
  sync(): Promise<void>;
  readonly stats: { readonly writes: number; readonly signals: number };
}

export function createMosquittoSync(deps: {
  config: Pick<Config, 'mosquitto'>;
  registry: Pick<Registry, 'current' | 'on'>;
  log: Logger;
}): MosquittoSync {
  const { syncDir: dir, pidFile } = deps.config.mosquitto;
  const { log } = deps;
  const stats = { writes: 0, signals: 0 };
  let written: MosquittoFiles | undefined;
  let chain: Promise<void> = Promise.resolve();
  let running = false;

  const once = async () => {
    const files = renderMosquittoFiles(deps.registry.current().data);
    if (!(await writeMosquittoFiles(dir, files, written))) return;
    written = files;
    stats.writes++;
    if (files.skipped.length > 0)
      log.warn(
        { dir, skipped: files.skipped },
        'left out of the Mosquitto password_file: Mosquitto 2.0 cannot read their hashes',
      );
    if (!pidFile) {
      log.info(
        { dir },
        'Mosquitto files rewritten; no --mosquitto-pid-file: reload Mosquitto yourself (kill -HUP)',
      );
      return;
    }
    const problem = await signalMosquitto(pidFile);
    if (problem) log.warn({ dir, pidFile }, `Mosquitto files rewritten, but not reloaded: ${problem}`);
    else {
      stats.signals++;
      log.info({ dir, pidFile }, 'Mosquitto files rewritten; Mosquitto told to reload (SIGHUP)');
    }
  };
  // One write at a time, in order; a failure after start is logged and the next change tries again.
  const sync = () => {
    chain = chain.then(once).catch((err: Error) => {
      log.error({ dir, err: err.message }, 'Mosquitto files not rewritten');
    });
    return chain;
  };

  return {
    stats,
    sync,
    async start() {
      if (!dir) return;
      await once();
      running = true;
      deps.registry.on('changed', () => {
        if (running) void sync();
      });
    },
    async stop() {
      running = false;
      await chain;
    },
  };
}
