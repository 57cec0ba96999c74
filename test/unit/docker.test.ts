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
        // ./lab/... is made at set-up (README): the folder ./lab itself is in the repository.
        const local = source.startsWith('./lab/') ? './lab' : source;
        if (source.startsWith('.')) expect(existsSync(`${ROOT}${local}`), `${name}: ${source}`).toBe(true);
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
    // The default profile: services without a profile (the cluster profile has its own test).
    const published = Object.entries(compose.services)
      .filter(([, svc]) => !(svc as { profiles?: string[] }).profiles)
      .flatMap(([name, svc]) =>
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

/** The profile "cluster" of docker-compose.yml: two EMQX nodes, two gateways in external mode. */
type Service = {
  profiles?: string[];
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  ports?: string[];
  networks?: { default?: { aliases?: string[] } };
  depends_on?: Record<string, unknown>;
};
const text = readFileSync(`${ROOT}docker-compose.yml`, 'utf8');
const compose = parse(text) as {
  services: Record<string, Service>;
  secrets: Record<string, { file?: string; environment?: string }>;
};
const cluster = Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('cluster'));
const named = (prefix: string) => cluster.filter(([n]) => n.startsWith(prefix));
const nodes = named('emqx-');
const gateways = named('gateway-');
/** What compose hands the container: `$$` is a literal `$`; any other `${VAR}` becomes a variable's value. */
const interpolate = (value: string) =>
  value.replace(/\$\$|\$\{(\w+)(?::-[^}]*)?\}/g, (m, v: string | undefined) => (m === '$$' ? '$' : `<${v}>`));
/** A compose variable that is empty when unset: `${NAME:-}`. */
const composeVar = (name: string) => `\${${name}:-}`;
/** The value of --flag in a command. */
const flag = (cmd: string[], name: string) => cmd[cmd.indexOf(name) + 1];

describe('docker-compose.yml, profile "cluster": the gateways', () => {
  it('adds two EMQX nodes and two gateways under the profile, and leaves the default profile as it was', () => {
    expect(nodes.map(([n]) => n)).toEqual(['emqx-1', 'emqx-2']);
    expect(gateways.map(([n]) => n)).toEqual(['gateway-1', 'gateway-2']);
    const defaults = Object.entries(compose.services)
      .filter(([, s]) => !s.profiles)
      .map(([n]) => n);
    expect(defaults).toEqual(['influxdb', 'gateway', 'prometheus', 'grafana']);
    for (const [name, svc] of nodes) expect(svc.image, name).toMatch(/^emqx\/emqx:5\.8\.\d+$/);
  });

  it('runs the gateways in external mode with options the gateway has, one group, own ids and data', () => {
    const options = listOptions();
    const envs = new Set(options.map((o) => o.env));
    const flags = new Set(options.flatMap((o) => (o.node.flag ? [o.node.flag.split(' ')[0]] : [])));
    const seen = { ids: new Set<string>(), volumes: new Set<string>(), groups: new Set<string>() };
    for (const [name, svc] of gateways) {
      for (const v of Object.keys(svc.environment ?? {})) expect(envs, `${name}: ${v}`).toContain(v);
      const cmd = svc.command ?? [];
      expect(cmd[0]).toBe('serve');
      for (const f of cmd.filter((c) => c.startsWith('--'))) expect(flags, `${name}: ${f}`).toContain(f);
      expect(flag(cmd, '--source')).toBe('external');
      expect(flag(cmd, '--broker-url')).toBe(`mqtt://emqx-${name.slice(-1)}:1883`);
      expect(flag(cmd, '--data-dir')).toBe('/data');
      seen.ids.add(flag(cmd, '--broker-client-id') as string);
      seen.groups.add(flag(cmd, '--broker-group') as string);
      const data = (svc.volumes ?? []).find((v) => v.endsWith(':/data'));
      seen.volumes.add(data?.split(':')[0] as string);
      expect(flag(cmd, '--influx-url')).toBe('http://influxdb:8086');
    }
    expect(seen.ids.size).toBe(2);
    expect(seen.volumes).toEqual(new Set(['gateway-1-data', 'gateway-2-data']));
    expect(seen.groups.size).toBe(1);
  });

  it('keeps every secret out of the file: secrets from the environment, variables never inline', () => {
    for (const [name, svc] of cluster) {
      for (const [key, value] of Object.entries(svc.environment ?? {})) {
        // A file under /run/secrets, or the value of a variable: never the secret itself.
        if (/PASSWORD|TOKEN|COOKIE|SECRET/.test(key) && !key.endsWith('_FILE'))
          expect(value, `${name}: ${key}`).toMatch(/^\$\{[A-Z0-9_]+:-\}$/);
        if (key.endsWith('_FILE') && /PASSWORD|TOKEN/.test(key)) expect(value).toMatch(/^\/run\/secrets\//);
        for (const bearer of value.matchAll(/Bearer ([^"]*)"/g))
          expect(bearer[1], `${name}: ${key}`).toBe(composeVar('LIVINGLAB_BROKER_HOOKS_TOKEN'));
      }
    }
    expect(compose.secrets.broker_password).toEqual({ environment: 'LIVINGLAB_BROKER_PASSWORD' });
    expect(compose.secrets.broker_hooks_token).toEqual({ environment: 'LIVINGLAB_BROKER_HOOKS_TOKEN' });
    for (const [, svc] of gateways)
      expect(svc.secrets).toEqual(['broker_password', 'broker_hooks_token', 'ops_token']);
  });

  it('requires no variable for the default profile (compose interpolates every service first, docker/compose#11977)', () => {
    expect(cluster.length).toBe(4);
    for (const [name, svc] of cluster) {
      const values = [...Object.values(svc.environment ?? {}), ...(svc.command ?? [])];
      for (const v of values) expect(v, name).not.toMatch(/\$\{[A-Z0-9_]+:\?/);
    }
  });

  it('publishes the brokers for devices and the research API, dashboards on 127.0.0.1 only, no hooks or ops port', () => {
    const published = cluster.flatMap(([name, svc]) => (svc.ports ?? []).map((p) => `${name} ${p}`));
    expect(published.filter((p) => !p.includes(' 127.0.0.1:'))).toEqual([
      'emqx-1 8883:8883',
      'emqx-2 8884:8883',
      'gateway-1 8080:8080',
    ]);
    expect(published).toContain('emqx-1 127.0.0.1:18083:18083');
    expect(published.join(' ')).not.toMatch(/9464|9465|1883:/);
  });
});

describe('docker-compose.yml, profile "cluster": the EMQX nodes', () => {
  it('has the EMQX nodes seed each other by names their network aliases resolve', () => {
    const names = nodes.map(([, svc]) => svc.environment?.EMQX_NODE__NAME as string);
    expect(new Set(names).size).toBe(2);
    for (const [name, svc] of nodes) {
      const env = svc.environment ?? {};
      expect(env.EMQX_CLUSTER__DISCOVERY_STRATEGY, name).toBe('static');
      const seeds = /^\[(.*)\]$/.exec(env.EMQX_CLUSTER__STATIC__SEEDS ?? '')?.[1]?.split(',');
      expect(seeds, name).toEqual(names);
      const host = env.EMQX_NODE__NAME?.split('@')[1];
      expect(host, name).toMatch(/\./); // EMQX runs long names: the host must be an FQDN or an IP.
      expect(svc.networks?.default?.aliases, name).toEqual([host]);
      expect(env.EMQX_NODE__COOKIE).toBe(composeVar('EMQX_NODE_COOKIE'));
    }
  });

  it("points EMQX's authentication and authorization at a gateway's hooks listener, denying what it does not allow", () => {
    expect(nodes.length).toBe(2);
    const hooksOf = (svc: Service) => svc.environment?.LIVINGLAB_LISTENERS_BROKER_HOOKS_ENABLED === 'true';
    const hooksSource = readFileSync(`${ROOT}src/http/broker-hooks.ts`, 'utf8');
    const defaultPort = listOptions().find((o) => o.env === 'LIVINGLAB_LISTENERS_BROKER_HOOKS_PORT')?.node
      .default;
    for (const [name, svc] of nodes) {
      const env = svc.environment ?? {};
      for (const [key, path, fields] of [
        ['EMQX_AUTHENTICATION', '/emqx/authn', ['username', 'password', 'clientid', 'peerhost']],
        ['EMQX_AUTHORIZATION__SOURCES', '/emqx/authz', ['username', 'clientid', 'topic', 'action']],
      ] as const) {
        const value = interpolate(env[key] ?? '');
        const url = /url = "http:\/\/([a-z0-9-]+):(\d+)(\/[a-z/]+)"/.exec(value);
        expect(url, `${name}: ${key}`).not.toBeNull();
        const [, host, port, route] = url as RegExpExecArray;
        const gateway = compose.services[host as string] as Service;
        expect(gateway?.profiles, `${name}: ${host}`).toContain('cluster');
        expect(hooksOf(gateway), `${host} has the hooks listener on`).toBe(true);
        expect(gateway.environment?.LIVINGLAB_LISTENERS_BROKER_HOOKS_HOST).toBe('0.0.0.0');
        expect(Number(port)).toBe(defaultPort);
        expect(route).toBe(path);
        expect(hooksSource).toContain(`'${path}'`);
        expect(value).toContain('headers {authorization = "Bearer <LIVINGLAB_BROKER_HOOKS_TOKEN>"}');
        // EMQX fills its own ${...} placeholders; compose must leave them alone ($$).
        for (const f of fields) expect(value, `${name}: ${key}`).toContain(`${f} = "\${${f}}"`);
      }
      expect(env.EMQX_AUTHORIZATION__NO_MATCH).toBe('deny');
      expect(env.EMQX_AUTHORIZATION__CACHE__ENABLE).toBe('false');
    }
    // Every gateway has the listener (either can take over); the secret EMQX sends is theirs.
    for (const [name, svc] of gateways) {
      expect(hooksOf(svc), name).toBe(true);
      expect(svc.environment?.LIVINGLAB_LISTENERS_BROKER_HOOKS_TOKEN_FILE).toBe(
        '/run/secrets/broker_hooks_token',
      );
    }
    expect(text).not.toMatch(/EMQX_AUTHENTICATION__\d/); // one whole list: no index merged into a default
  });
});
