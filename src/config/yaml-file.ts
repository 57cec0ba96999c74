// Reads a YAML file and checks it against a JSON Schema, naming `file:line` in every error: the one
// way the gateway's YAML inputs (config, registry, fleets, scenarios) are read. It decides nothing
// about what a document means: callers bring the ajv validator and the error code. Never logs,
// never writes.
import { readFileSync } from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { isMap, isNode, LineCounter, parseDocument } from 'yaml';
import { type ErrorCode, GatewayError } from '../errors.js';

/** A parsed YAML mapping and the way back from a path in it to its line. */
export interface YamlDocument {
  readonly file: string;
  /** The document as plain values; `{}` for an empty file. */
  readonly data: Record<string, unknown>;
  /** True when the file holds no document at all (nothing, or only comments). */
  readonly empty: boolean;
  /** The 1-based line where `path` (or its nearest existing parent) starts. */
  lineOf(path: readonly (string | number)[]): number | undefined;
}

/** `file:line`, or just `file` when the line is unknown. */
export const fileLine = (file: string, line: number | undefined): string =>
  `${file}${line ? `:${line}` : ''}`;

/** Parses YAML text whose top level must be a mapping; throws `code` naming `file:line`. */
export function parseYaml(text: string, file: string, code: ErrorCode): YamlDocument {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const message = first.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '');
    throw new GatewayError(code, `${fileLine(file, first.linePos?.[0]?.line)}: ${message}`, { cause: first });
  }
  if (doc.contents !== null && !isMap(doc.contents))
    throw new GatewayError(code, `${file}:1: top level must be a mapping`);
  const lineOf = (path: readonly (string | number)[]) => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const data = (doc.toJS() as Record<string, unknown> | null) ?? {};
  return { file, data, empty: doc.contents === null, lineOf };
}

/** Reads and parses a YAML file; `what` names it in the error when it cannot be read. */
export function readYamlFile(file: string, code: ErrorCode, what = 'file'): YamlDocument {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayError(code, `cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseYaml(text, file, code);
}

/** The path an ajv error points at, an additional property's own key included. */
export function errorPath(e: ErrorObject): (string | number)[] {
  const path: (string | number)[] = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  if (e.keyword === 'additionalProperties') path.push(String(e.params.additionalProperty));
  return path;
}

/** `a.b.0`, or `(top level)`: how errors name where a value sits. */
export const dottedPath = (e: ErrorObject): string =>
  e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(top level)';

/**
 * Validates a parsed document (ajv may fill defaults in place); on failure throws `code` listing
 * the first ten problems as `file:line: path: message`.
 */
export function validateYaml<T>(doc: YamlDocument, validate: ValidateFunction<T>, code: ErrorCode): T {
  const data: unknown = doc.data;
  if (validate(data)) return data;
  const problems = (validate.errors ?? []).slice(0, 10).map((e) => {
    const extra =
      e.keyword === 'additionalProperties'
        ? ` ("${String(e.params.additionalProperty)}")`
        : e.keyword === 'enum'
          ? ` (${(e.params.allowedValues as unknown[]).join(', ')})`
          : '';
    return `${fileLine(doc.file, doc.lineOf(errorPath(e)))}: ${dottedPath(e)}: ${e.message}${extra}`;
  });
  throw new GatewayError(code, problems.join('\n'));
}

/** Reads, parses and validates a YAML file in one step. */
export function loadYamlFile<T>(
  file: string,
  validate: ValidateFunction<T>,
  code: ErrorCode,
  what?: string,
): T {
  return validateYaml(readYamlFile(file, code, what), validate, code);
}
