// No Docker engine runs here: check what can be checked without one.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { listOptions } from '../../src/config/load.js';

const ROOT = new URL('../../', import.meta.url).pathname;

describe('docker-compose.yml and Dockerfile', () => {
  const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
    services: Record<
      string,
      {
        build?: string;
        environment?: Record<string, string>;
        volumes?: string[];
        depends_on?: Record<string, unknown>;
      }
    >;
    volumes: Record<string, unknown>;
  };
  const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');

  it('sets only configuration variables the gateway reads', () => {
    const known = new Set(listOptions().map((o) => o.env));
    const used = Object.keys(compose.services.gateway?.environment ?? {});
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(known, name).toContain(name);
  });

  it('references named volumes it declares, folders that exist and services that exist', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const source = v.split(':')[0] as string;
        if (source.startsWith('.')) expect(existsSync(`${ROOT}${source}`), `${name}: ${source}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: ${source}`).toContain(source);
      }
      for (const dep of Object.keys(svc.depends_on ?? {}))
        expect(Object.keys(compose.services)).toContain(dep);
    }
    expect(compose.services.gateway?.build).toBe('.');
  });

  it('copies only files that exist, runs as a non-root user and has a health check', () => {
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (m[1] as string).split(' ')) expect(existsSync(`${ROOT}${src}`), src).toBe(true);
    }
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n.*\/healthz/m);
  });
});
