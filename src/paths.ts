// Where the package's own files are, from source (src/…) or compiled (dist/src/…). Imports nothing.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the nearest folder above this module that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'device-schemas'))) return dir;
    const up = dirname(dir);
    if (up === dir)
      throw new Error('livinglab: cannot find the package root (package.json and device-schemas/)');
    dir = up;
  }
}
