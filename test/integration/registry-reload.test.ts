// A registry write that lands while the gateway is reading the registry (issue 17: a second write
// during a 1.5 s reload of 20,000 devices was never loaded, and its device was refused). The real
// registry and its worker-thread reader on real files; the reader is slowed by a seam that makes the
// second write happen after the files were read and before the reload finished.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/log.js';
import { readRegistryFile, writeRegistryFile } from '../../src/registry/file.js';
import { readRegistryFileOffThread } from '../../src/registry/read-off-thread.js';
import { createRegistry } from '../../src/registry/registry.js';
import { EMPTY_REGISTRY } from '../../src/registry/types.js';
import { withDevices } from '../helpers/gateway.js';

it('a registry write during a slow reload is read before the reload ends, without waiting for the file watcher', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'll-reload-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'lab.yaml');
  const scale = (id: string) => ({ id, type: 'weight-scale', site: 'odense' });
  await writeRegistryFile(file, withDevices(EMPTY_REGISTRY, [scale('scale-1')]));
  const addScale = async (id: string) =>
    writeRegistryFile(file, withDevices(await readRegistryFile(file), [scale(id)]));

  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  let writeDuringRead: (() => Promise<void>) | undefined;
  const registry = createRegistry({
    file,
    // The watcher never fires within the test: only the reload itself may notice the second write.
    pollMs: 3_600_000,
    log: createLogger({ level: 'info', destination: sink }),
    readFiles: async (f, opts) => {
      const read = await readRegistryFileOffThread(f, opts);
      const write = writeDuringRead;
      writeDuringRead = undefined;
      await write?.();
      return read;
    },
  });
  await registry.start();
  onTestFinished(() => registry.stop());

  await addScale('scale-2');
  writeDuringRead = () => addScale('scale-3');
  expect(await registry.reload()).toBe(true);
  expect([...registry.current().devices.keys()]).toEqual(['scale-1', 'scale-2', 'scale-3']);
  expect(lines.some((l) => l.msg === 'registry changed while it was read; reading it again')).toBe(true);
});
