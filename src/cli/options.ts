// The flags that reach a gateway's files and services, made from the configuration schema: each
// option with a `flag` in src/config/schema.ts becomes a commander option here, with its help text
// from the schema's description, default and LIVINGLAB_* name. Flag values are handed to
// loadConfig, which validates them all at once; nothing here names or checks an option.
import { type Command, Option } from 'commander';
import type { TObject, TProperties } from 'typebox';
import { type ConfigInput, loadConfig, readOptionText, setPath } from '../config/load.js';
import { type CONFIG_SCHEMA, type Config, type LeafOption, listOptions } from '../config/schema.js';

type Leaves<P extends TProperties> = {
  [K in keyof P]: P[K] extends TObject<infer Q> ? Leaves<Q> : P[K];
}[keyof P];
type FlagOf<S> = S extends { readonly flag: infer F extends string } ? F : never;
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type AttributeOf<F extends string> = F extends `--no-${infer N}`
  ? Camel<N>
  : F extends `--${infer N} ${string}`
    ? Camel<N>
    : never;
type SchemaFlag = FlagOf<Leaves<(typeof CONFIG_SCHEMA)['properties']>>;

/** What commander hands an action for the schema's flags (commander's camelCase names) and --config. */
export type CommonFlags = {
  [F in SchemaFlag as AttributeOf<F>]?: F extends `--no-${string}` ? boolean : string;
} & { config?: string };

const FLAGGED = listOptions().filter((o) => o.node.flag !== undefined);
const REGISTRY = FLAGGED.find((o) => o.path.join('.') === 'registry') as LeafOption;
const SECRETS = FLAGGED.find((o) => o.path.join('.') === 'secretsFile') as LeafOption;

function helpOf(opt: LeafOption): string {
  const { description = '', default: def, flag = '' } = opt.node;
  if (flag.startsWith('--no-')) return `turn off: ${description} (${opt.env}=false)`;
  return `${description} (${def === '' ? '' : `default ${String(def)}, `}${opt.env})`;
}

// A fresh Option per command: commander keeps state on the Option objects it is given.
const toOption = (opt: LeafOption) => new Option(opt.node.flag as string, helpOf(opt));

export function addRegistryOption(cmd: Command): Command {
  return cmd
    .addOption(toOption(REGISTRY))
    .addOption(toOption(SECRETS))
    .option('--config <file>', 'YAML configuration file (see livinglab.example.yaml)');
}

const DATA_DIR = FLAGGED.find((o) => o.path.join('.') === 'dataDir') as LeafOption;

/** For commands that change the registry: they record the change in the data folder's audit log. */
export function addRegistryEditOptions(cmd: Command): Command {
  return addRegistryOption(cmd).addOption(toOption(DATA_DIR));
}

export function addServeOptions(cmd: Command): Command {
  addRegistryOption(cmd);
  for (const opt of FLAGGED) if (opt !== REGISTRY && opt !== SECRETS) cmd.addOption(toOption(opt));
  return cmd;
}

/** Flag values (as commander parsed them) nested like the schema; absent flags are left out. */
export function flagsToInput(flags: Record<string, unknown>): ConfigInput {
  const input: ConfigInput = {};
  for (const opt of FLAGGED) {
    const value = flags[toOption(opt).attributeName()];
    if (typeof value === 'string') setPath(input, opt.path, readOptionText(opt, value));
    // commander sets a --no-x flag's value to true by default; only an explicit --no-x overrides.
    else if (value === false) setPath(input, opt.path, false);
  }
  return input;
}

export function configFromFlags(flags: CommonFlags, env: Record<string, string | undefined>): Config {
  const input = flagsToInput(flags);
  return loadConfig({ ...(flags.config ? { file: flags.config } : {}), env, flags: input });
}
