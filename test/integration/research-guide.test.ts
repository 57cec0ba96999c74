// The researcher guide (docs/research-guide.md) run as written: each block marked `checked:` is
// executed against a real gateway and influxd with Debian's pandas (python3-pandas, through
// /usr/bin/python3: a python3 earlier on PATH may lack it) or base R (r-base-core), with a few lines
// appended that print what the block produced; the test asserts on that. The Arrow stream, which
// the R arrow package would read (not packaged for Debian), is read with apache-arrow.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { addProject, issueToken, setConsent } from '../../src/registry/research.js';
import { useLab } from '../helpers/fixture.js';
import { connectDevice } from '../helpers/mqtt.js';
import { untilTokens } from '../helpers/research.js';

const run = promisify(execFile);
const GUIDE = readFileSync(new URL('../../docs/research-guide.md', import.meta.url), 'utf8');
const DAY = 86_400_000;
const TODAY = Date.now();
const day = (offset: number) => new Date(TODAY + offset * DAY).toISOString().slice(0, 10);

/** The fenced block that follows `<!-- checked: NAME -->` in the guide. */
function block(name: string): string {
  const m = new RegExp(`<!-- checked: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(GUIDE);
  if (!m?.[1]) throw new Error(`docs/research-guide.md has no block marked "checked: ${name}"`);
  return m[1];
}

// Three readings a second apart, each with its own nanosecond digits, from two oximeters.
const base = Math.floor((TODAY - DAY) / 1000) * 1000;
const stamp = (i: number, ns: string) => `${new Date(base + i * 1000).toISOString().slice(0, 19)}.${ns}Z`;
const READINGS = [
  { device: 'ox-1', site: 'home-1', ts: stamp(0, '123456789'), spo2: 97, pulse: 61, probe: 'finger' },
  { device: 'ox-2', site: 'home-2', ts: stamp(1, '000000001'), spo2: 93, pulse: 88, probe: 'ear' },
  { device: 'ox-1', site: 'home-1', ts: stamp(2, '999999999'), spo2: 96, pulse: 64, probe: 'finger' },
];
const FIRST_NS = BigInt(base) * 1_000_000n + 123_456_789n;
let token = '';

const lab = useLab({
  devices: [
    { id: 'ox-1', type: 'pulse-oximeter', site: 'home-1', subject: 'p-1' },
    { id: 'ox-2', type: 'pulse-oximeter', site: 'home-2', subject: 'p-2' },
  ],
});
beforeAll(async () => {
  for (const r of READINGS) {
    const c = await connectDevice(lab.gw.mqttUrl, r.device);
    const { device, site, ...payload } = r;
    await c.publishAsync(`lab/${site}/pulse-oximeter/${device}/telemetry`, JSON.stringify(payload), {
      qos: 1,
    });
    await c.endAsync();
  }
  await lab.gw.app.drain.idle(10_000);
  await lab.gw.editRegistry((d0) => {
    let d = addProject(d0, { id: 'sleep', from: day(-10), to: day(1), types: ['pulse-oximeter'] });
    d = setConsent(d, 'sleep', 'p-1', { on: day(-10) });
    d = setConsent(d, 'sleep', 'p-2', { on: day(-10) });
    const issued = issueToken(d, { project: 'sleep', researcher: 'guide', expires: new Date(TODAY + DAY) });
    token = issued.token;
    return issued.data;
  });
  await untilTokens(lab.gw, 1);
});

const env = () => ({
  ...process.env,
  LIVINGLAB_URL: `http://127.0.0.1:${lab.gw.app.httpPort}`,
  LIVINGLAB_TOKEN: token,
});

async function python(name: string, check: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('/usr/bin/python3', ['-c', `${block(name)}\nimport json\n${check}`], {
    env: env(),
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '');
}

describe('docs/research-guide.md, Python (pandas)', () => {
  const tableCheck =
    'print(json.dumps({"rows": len(df), "spo2": str(df["spo2"].dtype), "time": str(df["time"].dtype), "ns": [str(t.value) for t in df["time"]], "spo2s": [int(v) for v in df["spo2"]], "probes": list(df["probe"])}))';

  it.each(['python-csv', 'python-ndjson'])(
    '%s: integers stay integers, times keep their nanoseconds',
    async (name) => {
      const out = await python(name, tableCheck);
      expect(out).toEqual({
        rows: 3,
        spo2: 'Int64',
        time: 'datetime64[ns, UTC]',
        ns: [
          FIRST_NS,
          FIRST_NS + 1_000_000_000n - 123_456_788n,
          FIRST_NS + 2_000_000_000n + 876_543_210n,
        ].map(String),
        spo2s: [97, 93, 96],
        probes: ['finger', 'ear', 'finger'],
      });
    },
  );

  it('python-fhir: one SpO2 observation per reading, value and nanosecond time kept', async () => {
    const out = await python(
      'python-fhir',
      'print(json.dumps({"values": [float(v) for v in spo2["valueQuantity.value"]], "ns": [str(t.value) for t in spo2["effectiveDateTime"]], "subjects": sorted(set(spo2["subject.reference"]))}))',
    );
    expect(out.values).toEqual([97, 93, 96]);
    expect((out.ns as string[])[0]).toBe(String(FIRST_NS));
    expect(out.subjects).toHaveLength(2);
    expect(JSON.stringify(out)).not.toMatch(/p-1|p-2|ox-1|ox-2|home-/);
  });
});

describe('docs/research-guide.md, R and Arrow', () => {
  it('r-csv: base R reads integers as integers and times as POSIXct, the text keeps nine digits', async () => {
    const check =
      'cat(sprintf(\'{"rows":%d,"spo2":"%s","instant":"%s","tz":"%s","time":"%s","sec":"%.6f"}\\n\', nrow(readings), class(readings$spo2), class(readings$instant)[1], attr(readings$instant, "tzone"), readings$time[1], as.numeric(readings$instant[1]) %% 60))';
    const { stdout } = await run('Rscript', ['-e', `${block('r-csv')}\n${check}`], {
      env: env(),
      timeout: 60_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '');
    expect(out).toMatchObject({
      rows: 3,
      spo2: 'integer',
      instant: 'POSIXct',
      tz: 'UTC',
      time: READINGS[0]?.ts,
    });
    // The microseconds R can hold are the ones the device sent.
    expect(out.sec).toBe(`${String(new Date(base).getUTCSeconds())}.123457`);
  });

  it('the Arrow stream the R arrow package reads: Timestamp(ns, UTC) and Int64', async () => {
    const res = await fetch(
      `${env().LIVINGLAB_URL}/api/v1/projects/sleep/readings?type=pulse-oximeter&format=arrow`,
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    expect(String(table.schema.fields.find((f) => f.name === 'time')?.type)).toBe(
      'Timestamp<NANOSECOND, UTC>',
    );
    expect(String(table.schema.fields.find((f) => f.name === 'spo2')?.type)).toBe('Int64');
    expect(table.numRows).toBe(3);
  });
});
