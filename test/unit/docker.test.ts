// No Docker engine runs here: check what can be checked without one.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { listOptions } from '../../src/config/load.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** The metric names the gateway registers (src/http/metrics.ts), each quoted once there. */
function exportedMetrics(): Set<string> {
  const source = readFileSync(`${ROOT}src/http/metrics.ts`, 'utf8');
  return new Set([...source.matchAll(/'(livinglab_[a-z_]+)'/g)].map((m) => m[1] as string));
}

/** The gateway metrics an expression names (a histogram's series by its own name). */
const metricsIn = (expr: string) =>
  [...expr.matchAll(/livinglab_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));

describe('docker-compose.yml and Dockerfile', () => {
  const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
    services: Record<
      string,
      {
        build?: string;
        environment?: Record<string, string>;
        volumes?: string[];
        depends_on?: Record<string, unknown> | string[];
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
      for (const dep of Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys(svc.depends_on ?? {}))
        expect(Object.keys(compose.services)).toContain(dep);
    }
    expect(compose.services.gateway?.build).toBe('.');
  });

  it('has Prometheus scrape the ops listener with the ops token the gateway reads, unpublished', () => {
    const gateway = compose.services.gateway as { environment: Record<string, string>; ports?: string[] };
    const secretFile = '/run/secrets/ops_token';
    expect(gateway.environment.LIVINGLAB_LISTENERS_OPS_TOKEN_FILE).toBe(secretFile);
    expect(gateway.ports ?? []).not.toContainEqual(expect.stringContaining('9464'));
    const prometheus = parse(readFileSync(`${ROOT}deploy/prometheus/prometheus.yml`, 'utf8')) as {
      scrape_configs: {
        authorization?: { type: string; credentials_file: string };
        static_configs: { targets: string[] }[];
      }[];
    };
    const job = prometheus.scrape_configs[0];
    expect(job?.authorization).toEqual({ type: 'Bearer', credentials_file: secretFile });
    expect(job?.static_configs[0]?.targets).toEqual(['gateway:9464']);
    const secrets = (svc: string) => (compose.services[svc] as { secrets?: string[] }).secrets;
    expect(secrets('gateway')).toContain('ops_token');
    expect(secrets('prometheus')).toContain('ops_token');
  });

  it('publishes only MQTT over TLS and the HTTPS API beyond this machine, with TLS configured', () => {
    const published = Object.entries(compose.services).flatMap(([name, svc]) =>
      ((svc as { ports?: string[] }).ports ?? []).map((p) => ({ name, p: String(p) })),
    );
    expect(published.length).toBeGreaterThan(0);
    for (const { name, p } of published) {
      // "127.0.0.1:3000:3000" is this machine only; "8883:8883" is every interface.
      if (p.startsWith('127.0.0.1:')) continue;
      expect(`${name} ${p}`).toMatch(/^gateway (8883:8883|8080:8080|8084:8084)$/);
    }
    expect(published).toContainEqual({ name: 'grafana', p: '127.0.0.1:3000:3000' });
    expect(published).toContainEqual({ name: 'influxdb', p: '127.0.0.1:8086:8086' });
    const env = compose.services.gateway?.environment ?? {};
    for (const file of ['LIVINGLAB_TLS_CERT', 'LIVINGLAB_TLS_KEY'])
      expect(env[file]).toMatch(/^\/lab\/tls\//);
  });

  it('starts Grafana only with an admin password from the environment, anonymous access off', () => {
    const env = compose.services.grafana?.environment ?? {};
    // ${VAR:?message}: compose refuses to start while the variable is unset or empty.
    expect(env.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}$/);
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')).not.toMatch(/admin\s*\/\s*admin/);
  });

  it('copies only files that exist, runs as a non-root user and has a health check', () => {
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (m[1] as string).split(' ')) expect(existsSync(`${ROOT}${src}`), src).toBe(true);
    }
    expect(dockerfile).toMatch(/^USER node$/m);
    // On the ops listener: plain HTTP on loopback, whether or not the API is served over HTTPS.
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n.*http:\/\/127\.0\.0\.1:9464\/healthz/m);
    expect(dockerfile).toMatch(/^FROM node:24-/m);
  });
});

describe('Grafana dashboards', () => {
  const dashboards = ['fleet-overview', 'device-detail'].map(
    (n) =>
      JSON.parse(readFileSync(`${ROOT}deploy/grafana/dashboards/${n}.json`, 'utf8')) as {
        panels: { datasource: { type: string; uid: string }; targets: { expr?: string; query?: string }[] }[];
      },
  );
  const datasources = parse(
    readFileSync(`${ROOT}deploy/grafana/provisioning/datasources/datasources.yaml`, 'utf8'),
  ) as {
    datasources: { uid: string; type: string }[];
  };

  it('use only the provisioned data sources', () => {
    const uids = new Set(datasources.datasources.map((d) => d.uid));
    for (const d of dashboards) for (const p of d.panels) expect(uids).toContain(p.datasource.uid);
  });

  it('query only measurements and fields that the device schemas define', async () => {
    const { loadSchemas } = await import('../../src/schemas/load.js');
    const { bundledSchemasDir } = await import('../../src/config/load.js');
    const schemas = loadSchemas(bundledSchemasDir()).all();
    const fieldsOf = new Map<string, Set<string>>();
    for (const s of schemas) {
      const set = fieldsOf.get(s.timeseries.measurement) ?? new Set<string>();
      for (const f of s.timeseries.fields) set.add(f.name);
      fieldsOf.set(s.timeseries.measurement, set);
    }
    const allFields = new Set([...fieldsOf.values()].flatMap((s) => [...s]));
    let checked = 0;
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          if (!t.query) continue;
          const m = /FROM "([a-z_]+)"/.exec(t.query);
          const fields = [...t.query.matchAll(/(?:mean|last)?\(?"([a-zA-Z0-9]+)"\)?(?: AS|,| FROM)/g)].map(
            (x) => x[1] as string,
          );
          expect(fields.length, t.query).toBeGreaterThan(0);
          for (const f of fields) {
            if (m) expect(fieldsOf.get(m[1] as string), `${t.query}: ${m[1]}`).toContain(f);
            else expect(allFields, t.query).toContain(f);
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(7);
  });

  it('chart only metrics that the gateway exports', () => {
    const exported = exportedMetrics();
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          for (const m of metricsIn(t.expr ?? '')) expect(exported, t.expr).toContain(m);
        }
      }
    }
  });
});

describe('Prometheus alert rules (deploy/prometheus/alerts.yml)', () => {
  type Rule = { alert: string; expr: string; for?: string; annotations: { summary: string } };
  const rules = (
    parse(readFileSync(`${ROOT}deploy/prometheus/alerts.yml`, 'utf8')) as { groups: { rules: Rule[] }[] }
  ).groups.flatMap((g) => g.rules);
  const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr ?? '';

  it('name only metrics that the gateway exports', () => {
    const exported = exportedMetrics();
    let named = 0;
    for (const r of rules) {
      for (const m of metricsIn(r.expr)) {
        expect(exported, `${r.alert}: ${r.expr}`).toContain(m);
        named++;
      }
      expect(r.annotations.summary, r.alert).not.toBe('');
    }
    expect(named).toBeGreaterThanOrEqual(rules.length - 1);
  });

  it('cover the failures issue 17 lists, with the thresholds it names', () => {
    expect(exprOf('LivingLabGatewayDown')).toMatch(/up\{job="livinglab"\} == 0/);
    expect(exprOf('LivingLabInfluxWritesFailing')).toContain('livinglab_write_retries_total');
    expect(exprOf('LivingLabSpoolHalfFull')).toMatch(
      /livinglab_spool_bytes \/ livinglab_spool_limit_bytes > 0\.5/,
    );
    expect(exprOf('LivingLabSpoolBacklogOld')).toMatch(/livinglab_spool_oldest_unwritten_seconds > 300/);
    expect(exprOf('LivingLabDevicesSilent')).toContain('livinglab_devices_silent');
    expect(exprOf('LivingLabRejectsJump')).toContain('livinglab_readings_rejected_total');
    expect(exprOf('LivingLabTlsCertificateExpiring')).toMatch(
      /livinglab_tls_certificate_expiry_timestamp_seconds - time\(\) < 14 \* 86400/,
    );
  });

  it('are loaded by the compose Prometheus, for the job that scrapes the gateway', () => {
    const prometheus = parse(readFileSync(`${ROOT}deploy/prometheus/prometheus.yml`, 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string }[];
    };
    expect(prometheus.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    expect(prometheus.scrape_configs.map((j) => j.job_name)).toContain('livinglab');
    const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
      services: { prometheus: { volumes: string[] } };
    };
    expect(compose.services.prometheus.volumes).toContain(
      './deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro',
    );
  });
});
