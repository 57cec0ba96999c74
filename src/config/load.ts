// Builds the one Config: defaults ← config file ← LIVINGLAB_* environment ← command-line flags.
// The only module that reads process.env (callers pass it in). Errors list every bad value at once
// as `path: message`. What the options are, their names and their Config keys come from schema.ts;
// nothing here names an option.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { GatewayError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { durationProblem, formatDuration, parseDuration, parseSize } from './duration.js';
import {
  CONFIG_ROOT,
  CONFIG_SCHEMA,
  type Config,
  configKeyOf,
  type LeafOption,
  listOptions,
  type OptionNode,
} from './schema.js';
import { dottedPath, readYamlFile } from './yaml-file.js';

export { listOptions };

export type ConfigInput = { [key: string]: string | number | boolean | ConfigInput | undefined };

/** The folder of bundled device schemas (works from src/ under vitest and from dist/). */
export function bundledSchemasDir(): string {
  return join(packageRoot(), 'device-schemas');
}

/**
 * An option's value as text (a variable or a flag) typed as the schema expects: whole numbers for
 * integers, true/false/on/off/1/0 for booleans; anything else stays text for ajv to judge.
 */
export function readOptionText(opt: LeafOption, raw: string): string | number | boolean {
  if (opt.type === 'integer' && /^\d+$/.test(raw)) return Number(raw);
  if (opt.type === 'boolean' && /^(true|false|on|off|1|0)$/i.test(raw)) return /^(true|on|1)$/i.test(raw);
  return raw;
}

/** Sets a value at a schema path, creating the groups on the way. */
export function setPath(target: ConfigInput, path: readonly string[], value: ConfigInput[string]): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as ConfigInput;
  }
  node[path[path.length - 1] as string] = value;
}

function merge(base: ConfigInput, over: ConfigInput): ConfigInput {
  const out: ConfigInput = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const prev = out[key];
    out[key] =
      typeof value === 'object' && typeof prev === 'object' && prev !== null ? merge(prev, value) : value;
  }
  return out;
}

function fromEnv(env: Record<string, string | undefined>): ConfigInput {
  const out: ConfigInput = {};
  for (const opt of listOptions()) {
    const raw = env[opt.env];
    if (raw === undefined || raw === '') continue;
    setPath(out, opt.path, readOptionText(opt, raw));
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
// An IANA name Intl knows, or empty for the system's own zone.
ajv.addFormat('time-zone', (name: string) => {
  if (name === '') return true;
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
});
const validateConfig = ajv.compile(CONFIG_SCHEMA);

function valueAt(input: ConfigInput, path: readonly string[]): unknown {
  let node: unknown = input;
  for (const key of path)
    node = typeof node === 'object' && node !== null ? (node as ConfigInput)[key] : undefined;
  return node;
}

/**
 * Problems with the durations given (path → message): a missing unit (a bare `90` once meant
 * 90 ms and made housekeeping delete every rotated log), or less than the option's least value.
 */
function durationProblems(input: ConfigInput): Map<string, string> {
  const out = new Map<string, string>();
  for (const opt of listOptions()) {
    if (opt.type !== 'duration') continue;
    const value = valueAt(input, opt.path);
    if (value === undefined) continue;
    const name = opt.path.join('.');
    const problem = durationProblem(value, String(opt.node.default));
    const least = parseDuration(opt.node.least ?? '1ms') as number;
    if (problem) out.set(name, problem);
    else if ((parseDuration(value as string) as number) < least)
      out.set(
        name,
        `"${String(value)}" is too short: it must be at least ${least === 0 ? '0s' : formatDuration(least)}`,
      );
  }
  return out;
}

/** Checks the merged input (filling defaults in a copy); throws every problem at once. */
function validateInput(input: ConfigInput): Record<string, unknown> {
  const raw = structuredClone(input) as Record<string, unknown>;
  const durations = durationProblems(input);
  if (validateConfig(raw) && durations.size === 0) return raw;
  const lines = (validateConfig.errors ?? [])
    .filter((e) => !durations.has(dottedPath(e)))
    .map((e) => {
      const extra = e.keyword === 'additionalProperties' ? ` "${String(e.params.additionalProperty)}"` : '';
      const message =
        e.keyword === 'format' && e.params.format === 'time-zone'
          ? `"${String(e.data)}" is not an IANA time zone name (for example Europe/Copenhagen or UTC)`
          : e.message;
      return `  ${dottedPath(e)}: ${message}${extra}`;
    });
  for (const [path, message] of durations) lines.push(`  ${path}: ${message}`);
  throw new GatewayError('LL_CONFIG_INVALID', `invalid configuration:\n${lines.join('\n')}`);
}

function toConfigValue(leaf: OptionNode, value: unknown, name: string): unknown {
  if (leaf.unit === undefined) return value;
  const parsed = leaf.unit === 'ms' ? parseDuration(String(value)) : parseSize(value as string | number);
  if (parsed === undefined) {
    const what = leaf.unit === 'ms' ? 'a duration' : 'a size';
    throw new GatewayError('LL_CONFIG_INVALID', `${name}: not ${what}: ${String(value)}`);
  }
  return parsed;
}

/** Validated input → Config shape: durations to ms and sizes to bytes, under their Config keys. */
function normalise(node: OptionNode, value: unknown, path: string[]): unknown {
  if (!node.properties) return toConfigValue(node, value, path.join('.'));
  const given = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(node.properties))
    out[configKeyOf(key, child)] = normalise(child, given[key], [...path, key]);
  return out;
}

export interface LoadConfigOptions {
  /** A YAML config file; optional. */
  file?: string;
  /** Usually process.env; only LIVINGLAB_* names are read. */
  env?: Record<string, string | undefined>;
  /** Values from command-line flags, already nested like the schema. */
  flags?: ConfigInput;
}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  let input: ConfigInput = {};
  if (opts.file)
    input = merge(input, readYamlFile(opts.file, 'LL_CONFIG_INVALID', 'config file').data as ConfigInput);
  input = merge(input, fromEnv(opts.env ?? {}));
  input = merge(input, opts.flags ?? {});
  // normalise() renames with configKeyOf, the rule the Config type states; config.test.ts checks
  // every leaf of a loaded Config against it, so this one cast is checked at test time.
  const config = normalise(CONFIG_ROOT, validateInput(input), []) as Config;
  return deepFreeze({ ...config, schemasDir: config.schemasDir || bundledSchemasDir() });
}

/**
 * A listener's bearer token: the environment variable, else the content of its `tokenFile` (a
 * container secret), else undefined. Never a config option, so it cannot end up in clear in a YAML
 * file. A file that holds no token, or one shorter than 16 characters, is refused.
 */
function loadListenerToken(fromEnv: string | undefined, file: string, option: string): string | undefined {
  const trimmed = fromEnv?.trim();
  if (trimmed) return trimmed;
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new GatewayError('LL_CONFIG_INVALID', `${option}: cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.length < 16)
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `${option}: ${file} holds ${text.length === 0 ? 'no token' : 'a token shorter than 16 characters'}; put a long random token in it (openssl rand -hex 32)`,
    );
  return text;
}

/**
 * The ops listener's bearer token: LIVINGLAB_OPS_TOKEN, else `listeners.ops.tokenFile`; app.ts
 * decides whether the listener may run without it.
 */
export function loadOpsToken(config: Config, env: Record<string, string | undefined>): string | undefined {
  return loadListenerToken(
    env.LIVINGLAB_OPS_TOKEN,
    config.listeners.ops.tokenFile,
    'listeners.ops.tokenFile',
  );
}

/**
 * The secret an external broker sends to the auth hooks listener: LIVINGLAB_BROKER_HOOKS_TOKEN,
 * else `listeners.brokerHooks.tokenFile` (app.ts refuses to open the listener without one).
 */
export function loadBrokerHooksToken(
  config: Config,
  env: Record<string, string | undefined>,
): string | undefined {
  return loadListenerToken(
    env.LIVINGLAB_BROKER_HOOKS_TOKEN,
    config.listeners.brokerHooks.tokenFile,
    'listeners.brokerHooks.tokenFile',
  );
}

/**
 * The gateway's password on an external broker (`--source external`): LIVINGLAB_BROKER_PASSWORD,
 * else the content of `external.passwordFile`, else undefined. Like the ops token it is never a
 * config option, so it cannot end up in clear in a YAML file or in the logged configuration.
 */
export function loadBrokerPassword(
  config: Config,
  env: Record<string, string | undefined>,
): string | undefined {
  const fromEnv = env.LIVINGLAB_BROKER_PASSWORD;
  if (fromEnv) return fromEnv;
  const file = config.external.passwordFile;
  if (!file) return undefined;
  try {
    // Only a trailing newline is trimmed: spaces may be part of a password.
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new GatewayError(
      'LL_CONFIG_INVALID',
      `external.passwordFile: cannot read ${file}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
