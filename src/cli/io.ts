// Small terminal I/O for the commands: reading a secret from standard input, printing tables.
import { GatewayError } from '../errors.js';

export async function readStdinSecret(what: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text.length < 8)
    throw new GatewayError('LL_INPUT_INVALID', `${what} from standard input must have at least 8 characters`);
  return text;
}

export function printTable(
  rows: readonly (readonly string[])[],
  out: NodeJS.WritableStream = process.stdout,
): void {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  for (const row of rows)
    out.write(
      `${row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
}
