// Runs the `livinglab` command line from source in a child process, as a user would run it, and
// collects what it printed and its exit code. It never runs a command in the test's own process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;

let scratch: string | undefined;
/** One temporary data folder per test process, for commands run without a data folder of their own. */
function scratchDataDir(): string {
  if (!scratch) {
    const dir = mkdtempSync(join(tmpdir(), 'll-cli-scratch-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    scratch = dir;
  }
  return scratch;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The node arguments that run `livinglab`: the build in dist/ when scripts/test.sh has just made it
 * (LIVINGLAB_TEST_BUILT=1: about 0.8 s of CPU less per command than compiling src/ with tsx, and the
 * suite runs hundreds), otherwise src/ through tsx, so a single test file run by hand never meets a
 * stale build.
 */
export function cliEntry(): string[] {
  return process.env.LIVINGLAB_TEST_BUILT === '1'
    ? [join(ROOT, 'dist/src/cli/main.js')]
    : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
}

/**
 * Runs the CLI from source (the same code `livinglab` runs from dist/) with `input` on its stdin and
 * `env` added to this process's environment; resolves when it exits, whatever its exit code.
 */
export async function runCli(
  args: string[],
  opts: { input?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const { input, env, timeoutMs = 60_000 } = opts;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...cliEntry(), ...args], {
      cwd: ROOT,
      // A command that hangs is killed rather than left running after its test.
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      // A command that edits the registry appends to the audit log of its data folder: never the
      // repository's data/ (a test that means a data folder names it with --data-dir or env).
      env: { ...process.env, LIVINGLAB_DATA_DIR: scratchDataDir(), ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(input ?? '');
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
