// The exclusive lock on a data folder: one `livinglab serve` per folder, because two gateways on
// one spool would replay and delete each other's segments. Readers (`report`, `simulate --verify`,
// `export`) never take it and never wait for it.
//
// Why a listening unix socket and not a pid file: Node has no flock(), and a pid file outlives a
// crash or `kill -9`, so its liveness has to be guessed (is the pid alive, is it still our process
// or a reused pid, on this host, in this pid namespace?). A listening socket needs no guess: the
// kernel closes it when its process dies, however it dies, and connect() then fails with
// ECONNREFUSED, also from another container that mounts the same folder. Each gateway binds its
// own socket, `lock/{pid}-{random}.sock`, and never reuses a name, so removing a dead one can never
// remove a live one. Exclusion without a check-then-act race: a gateway binds first and looks for
// the others after; if it finds another live socket it backs off (closes its own) and looks again a
// moment later. Two that bind at once may both back off once, never both go on. What it must never
// do: treat a socket it cannot connect to for another reason than ECONNREFUSED/ENOENT as dead.
// Limits: the folder's file system must support unix sockets (local disks do; some network and
// FUSE mounts do not), and the socket's path must fit in 107 bytes.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { resolveDataPaths } from '../config/data-paths.js';
import { GatewayError } from '../errors.js';

/** Who holds a data folder: what the holder's socket answers to anyone who connects. */
export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  /** When the holding process started (ISO 8601). */
  readonly startedAt: string;
}

export interface DataLock {
  readonly socketPath: string;
  /** Closes the socket (which removes its file); idempotent. */
  release(): Promise<void>;
}

/** The Linux limit of a unix socket path (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;
const SOCKET_NAME = /^(\d+)-[0-9a-f]+\.sock$/;
const PROBE_TIMEOUT_MS = 2000;
const ATTEMPTS = 5;

type Probe = { live: false } | { live: true; owner: LockOwner | undefined };

/** Connects to another gateway's lock socket: refused or gone means its gateway is dead. */
function probe(path: string): Promise<Probe> {
  return new Promise((resolve) => {
    let text = '';
    let connected = false;
    const socket = connect(path);
    const done = (result: Probe) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const ownerOf = (): LockOwner | undefined => {
      try {
        return JSON.parse(text) as LockOwner;
      } catch {
        return undefined;
      }
    };
    // A live holder whose event loop is busy (replaying a large spool) accepts in the kernel but
    // answers late: it is live all the same, named from its socket's file name.
    const timer = setTimeout(() => done({ live: true, owner: ownerOf() }), PROBE_TIMEOUT_MS);
    socket.on('connect', () => {
      connected = true;
    });
    socket.on('data', (d: Buffer) => {
      text += d.toString();
    });
    socket.on('end', () => done({ live: true, owner: ownerOf() }));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) done({ live: false });
      else done({ live: true, owner: ownerOf() });
    });
  });
}

function unusable(dataDir: string, what: string, err: unknown): GatewayError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const fix =
    code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? "give the gateway's user write access to it, or choose another --data-dir"
      : 'check the path, or choose another --data-dir';
  return new GatewayError(
    'LL_DATA_DIR_UNUSABLE',
    `data folder ${dataDir}: cannot ${what}: ${(err as Error).message}; ${fix}`,
    { cause: err },
  );
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The other live holders of the folder; removes the sockets of dead ones. */
async function findOthers(dir: string, own: string): Promise<{ path: string; owner: LockOwner }[]> {
  const live: { path: string; owner: LockOwner }[] = [];
  for (const name of await readdir(dir)) {
    const m = SOCKET_NAME.exec(name);
    const path = join(dir, name);
    if (!m || path === own) continue;
    const p = await probe(path);
    if (!p.live) await unlink(path).catch(() => undefined);
    else live.push({ path, owner: p.owner ?? { pid: Number(m[1]), host: '?', startedAt: '?' } });
  }
  return live;
}

function lockedBy(dataDir: string, other: { path: string; owner: LockOwner }): GatewayError {
  const { pid, host, startedAt } = other.owner;
  return new GatewayError(
    'LL_DATA_DIR_LOCKED',
    `data folder ${dataDir} is in use by another gateway: pid ${pid} on host ${host}, started ${startedAt} ` +
      `(lock ${other.path}); stop that gateway first, or give this one another --data-dir`,
  );
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Takes the data folder for this process, or throws LL_DATA_DIR_LOCKED naming the holder. */
export async function lockDataDir(dataDir: string): Promise<DataLock> {
  const dir = resolveDataPaths(dataDir).lock;
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw unusable(dataDir, 'create its lock folder', err);
  });
  const socketPath = join(dir, `${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH)
    throw new GatewayError(
      'LL_DATA_DIR_UNUSABLE',
      `data folder ${dataDir}: its lock socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes; ` +
        'choose a shorter --data-dir (or a shorter symlink to it)',
    );
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
  };
  for (let attempt = 1; ; attempt++) {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end(`${JSON.stringify(owner)}\n`);
    });
    await listen(server, socketPath).catch((err: unknown) => {
      throw unusable(dataDir, `open its lock socket ${socketPath}`, err);
    });
    // The lock must not keep a stopping process alive.
    server.unref();
    const others = await findOthers(dir, socketPath);
    const first = others[0];
    if (!first) {
      let closed: Promise<void> | undefined;
      const release = () => {
        closed ??= new Promise<void>((r) => server.close(() => r()));
        return closed;
      };
      return { socketPath, release };
    }
    // Closing removes our socket file, so the other one (or a retry of ours) does not see it.
    await new Promise<void>((r) => server.close(() => r()));
    if (attempt >= ATTEMPTS) throw lockedBy(dataDir, first);
    await pause(50 + Math.floor(Math.random() * 200));
    const still = (await findOthers(dir, socketPath))[0];
    if (still) throw lockedBy(dataDir, still);
  }
}
