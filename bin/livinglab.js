#!/usr/bin/env node
// Entry point of the `livinglab` command: runs the compiled CLI in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('livinglab: not built yet; run `npm install` (or `npm run build`) in the package folder first\n');
  process.exit(2);
}
await import(main.href);
