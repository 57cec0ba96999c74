// Renders livinglab.example.yaml from the configuration schema: every option, its description, its
// LIVINGLAB_* variable and its default, commented out. A test keeps the shipped file in step.
import { listOptions } from './load.js';
import { CONFIG_SCHEMA } from './schema.js';

type Node = { properties?: Record<string, Node>; description?: string; default?: unknown };

export function renderExampleConfig(): string {
  const envOf = new Map(listOptions().map((o) => [o.path.join('.'), o.env]));
  const out: string[] = [
    '# Living Lab Gateway configuration: every option with its default, commented out.',
    '# Precedence, lowest first: defaults, this file (--config FILE), LIVINGLAB_* environment, flags.',
    '# Durations take ms, s, m, h or d (for example 250ms, 60s, 7d).',
    '',
  ];
  const walk = (node: Node, path: string[], indent: string) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const here = [...path, key];
      if (child.properties) {
        out.push(`# ${indent}${key}:`);
        walk(child, here, `${indent}  `);
        continue;
      }
      const env = envOf.get(here.join('.'));
      out.push(`# ${indent}# ${child.description ?? ''} (${env})`);
      out.push(`# ${indent}${key}: ${JSON.stringify(child.default)}`);
    }
  };
  walk(CONFIG_SCHEMA as unknown as Node, [], '');
  return `${out.join('\n')}\n`;
}
