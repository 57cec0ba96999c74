// Renders livinglab.example.yaml from the configuration schema: every option, its description, its
// LIVINGLAB_* variable, its `serve` flag and its default, commented out. A test keeps the shipped
// file in step; nothing here names an option.
import { CONFIG_ROOT, listOptions, type OptionNode } from './schema.js';

/** A flag as a user types it: `--mqtt-port`, without the value placeholder. */
export const flagName = (flag: string): string => flag.replace(/\s.*$/, '');

export function renderExampleConfig(): string {
  const byPath = new Map(listOptions().map((o) => [o.path.join('.'), o]));
  const out: string[] = [
    '# Living Lab Gateway configuration: every option with its default, commented out.',
    '# Precedence, lowest first: defaults, this file (--config FILE), LIVINGLAB_* environment, flags.',
    '# Durations always take a unit: ms, s, m, h or d (for example 250ms, 60s, 7d); a bare number is refused.',
    '',
  ];
  const walk = (node: OptionNode, path: string[], indent: string) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const here = [...path, key];
      if (child.properties) {
        out.push(`# ${indent}${key}:`);
        walk(child, here, `${indent}  `);
        continue;
      }
      const opt = byPath.get(here.join('.'));
      const names = [opt?.env, child.flag && flagName(child.flag)].filter(Boolean).join(', ');
      out.push(`# ${indent}# ${child.description ?? ''} (${names})`);
      out.push(`# ${indent}${key}: ${JSON.stringify(child.default)}`);
    }
  };
  walk(CONFIG_ROOT, [], '');
  return `${out.join('\n')}\n`;
}
