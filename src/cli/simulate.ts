// `livinglab simulate`: provision a fleet, run it against a gateway, show progress, write the ground
// truth, and with --verify check the outcome in InfluxDB and the rejects log (exit 1 on a difference).
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { type Fleet, loadFleet } from '../../simulators/fleet.js';
import { type FleetPlan, planFleet } from '../../simulators/plan.js';
import { provisionFleet } from '../../simulators/provision.js';
import { emptyCounters, type RunCounters, type RunRecord, runFleet } from '../../simulators/runner.js';
import { EMPTY_SCENARIO, loadScenario, type Scenario } from '../../simulators/scenario.js';
import { type OutcomeReader, verifyRun } from '../../simulators/verify.js';
import { resolveDataPaths } from '../config/data-paths.js';
import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { loadSchemas } from '../schemas/load.js';
import type { SchemaSet } from '../schemas/types.js';
import { influxReadTarget, queryResult, quoteIdent, quoteString } from '../storage/influxql.js';
import { readRejects } from '../storage/rejects-log.js';
import { addRegistryOption, type CommonFlags, configFromFlags } from './options.js';

interface SimulateFlags extends CommonFlags {
  fleet: string;
  scenario?: string;
  speed?: string;
  seed?: string;
  start?: string;
  duration?: string;
  mqttUrl: string;
  ackLog?: string;
  groundTruth?: string;
  verify?: boolean;
  dryRun?: boolean;
  /** Stops the run (serve shutting down). */
  signal?: AbortSignal;
}

function progressLine(c: Readonly<RunCounters>): string {
  return `devices ${c.connected}/${c.devices} connected · messages ${c.messagesAcked}/${c.messagesSent} acknowledged · readings ${c.readingsAcked} · invalid sent ${c.invalidSent} · rejections received ${c.rejectionsReceived}`;
}

export interface SimulationResult {
  fleet: Fleet;
  counters: RunCounters;
  groundTruthFile: string;
  verified?: boolean;
}

const positive = (v: string | undefined, name: string) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new GatewayError('LL_INPUT_INVALID', `${name} must be a positive number, not "${v}"`);
  return n;
};

/** The fleet file with the command line's overrides (start, seed, speed, duration) applied. */
function loadFleetWithFlags(flags: SimulateFlags): Fleet {
  const durationMs = flags.duration ? parseDuration(flags.duration) : undefined;
  if (flags.duration && durationMs === undefined)
    throw new GatewayError('LL_INPUT_INVALID', `--duration "${flags.duration}" is not a duration like 2h`);
  const seed = positive(flags.seed, '--seed');
  const speed = positive(flags.speed, '--speed');
  return loadFleet(flags.fleet, {
    ...(flags.start ? { start: flags.start } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(speed !== undefined ? { speed } : {}),
    ...(durationMs !== undefined ? { durationMs } : {}),
  });
}

function planWithScenario(fleet: Fleet, scenario: Scenario, schemas: SchemaSet): FleetPlan {
  try {
    return planFleet(fleet, scenario, schemas);
  } catch (err) {
    throw new GatewayError('LL_INPUT_INVALID', (err as Error).message);
  }
}

function printPlannedMessages(plan: FleetPlan): void {
  for (const pd of plan.devices) {
    for (const m of pd.stream()) {
      if (!m.disconnectBefore)
        process.stdout.write(
          `${JSON.stringify({ t: new Date(m.t).toISOString(), topic: m.topic, payload: m.payload, ...(m.invalid ? { invalid: m.invalid } : {}) })}\n`,
        );
    }
  }
}

/** A terminal gets one line rewritten in place; a log gets a line every ten seconds at most. */
function progressReporter(out: NodeJS.WriteStream): (c: Readonly<RunCounters>) => void {
  const tty = Boolean(out.isTTY);
  let lastLine = 0;
  return (c) => {
    if (tty) out.write(`\r${progressLine(c)}\u001b[K`);
    else if (Date.now() - lastLine >= 10_000) {
      lastLine = Date.now();
      out.write(`${progressLine(c)}\n`);
    }
  };
}

interface PreparedRun {
  config: Config;
  schemas: SchemaSet;
  fleet: Fleet;
  scenario: Scenario;
  plan: FleetPlan;
}

async function runPlannedFleet(run: PreparedRun, flags: SimulateFlags, out: NodeJS.WriteStream | undefined) {
  const { config, fleet, plan, schemas } = run;
  const { credentials, added, reused, written } = await provisionFleet({
    registry: config.registry,
    secretsFile: config.secretsFile,
    fleet,
    schemas,
  });
  out?.write(
    `fleet ${fleet.name}: ${fleet.devices.length} devices (${added} added to ${config.registry}, ${reused} reused), seed ${fleet.seed}, speed ${fleet.speed}×, ${new Date(fleet.start).toISOString()} + ${flags.duration ?? `${fleet.durationMs / 60000} min`}\n`,
  );
  // A gateway polling the registry needs a moment to see new devices, new passwords and devices
  // newly marked simulated (their first readings would otherwise be tagged real).
  if (written) await new Promise((r) => setTimeout(r, config.registryPollMs + 500));
  const ackLog = flags.ackLog ? createWriteStream(flags.ackLog, { flags: 'w', mode: 0o600 }) : undefined;
  const result = await runFleet({
    plan,
    mqttUrl: flags.mqttUrl,
    credentials,
    remember: Boolean(flags.verify),
    ...(flags.signal ? { signal: flags.signal } : {}),
    ...(ackLog ? { ackLog } : {}),
    onProgress: out ? progressReporter(out) : undefined,
  });
  if (ackLog) await new Promise<void>((r) => ackLog.end(() => r()));
  if (out?.isTTY) out.write('\n');
  return result;
}

async function writeGroundTruth(
  run: PreparedRun,
  flags: SimulateFlags,
  counters: RunCounters,
  record: RunRecord,
): Promise<string> {
  const { fleet, scenario, plan } = run;
  const file =
    flags.groundTruth ??
    join(
      resolveDataPaths(run.config.dataDir).simulations,
      `${fleet.name}-${new Date(fleet.start).toISOString().replace(/[:.]/g, '-')}.json`,
    );
  await mkdir(dirname(file), { recursive: true });
  await writeFile(
    file,
    JSON.stringify(
      {
        fleet: fleet.name,
        scenario: scenario.name,
        seed: fleet.seed,
        start: new Date(fleet.start).toISOString(),
        end: new Date(fleet.start + fleet.durationMs).toISOString(),
        speed: fleet.speed,
        events: plan.events,
        invalidPayloads: record.invalid,
        counters,
      },
      null,
      1,
    ),
    { mode: 0o600 },
  );
  return file;
}

/** The gateway's own readers of what it stored and rejected, for `--verify`. */
function outcomeReader(config: PreparedRun['config']): OutcomeReader {
  const target = influxReadTarget(config.influx);
  return {
    async readings(measurement, deviceId, fromMs, toMs) {
      // A statement error (no such database) reads as no rows: verify then reports the readings as
      // missing. Refused credentials and an InfluxDB out of reach throw (LL_INFLUX_*), naming it.
      const { rows } = await queryResult(
        target,
        `SELECT * FROM ${quoteIdent(measurement)} WHERE device_id = ${quoteString(deviceId)} AND time >= ${fromMs}ms AND time <= ${toMs}ms`,
      );
      return rows;
    },
    rejects: () => readRejects(resolveDataPaths(config.dataDir).rejectsLog),
  };
}

/** Compares InfluxDB and the rejects log with what was acknowledged; true when they agree. */
async function verifyOutcome(run: PreparedRun, record: RunRecord, out: NodeJS.WriteStream | undefined) {
  const { config, plan, schemas } = run;
  // The gateway writes in batches: wait until what was acknowledged is there, or a minute passed.
  const deadline = Date.now() + 60_000;
  const check = () =>
    verifyRun({
      plan,
      record,
      schemas,
      outcome: outcomeReader(config),
    });
  let report = await check();
  while (!report.ok && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    report = await check();
  }
  out?.write(
    `verify: ${report.readingsExpected} acknowledged readings, ${report.readingsExpected - report.missing} in InfluxDB, ${report.missing} missing, ${report.wrongValues} wrong values; ` +
      `${report.invalidExpected} invalid payloads, ${report.invalidConfirmed} rejected as expected, ${report.invalidWrongReason} with another reason, ${report.invalidMissing} not in the rejects log\n`,
  );
  for (const p of report.problems) out?.write(`  ${p}\n`);
  out?.write(report.ok ? 'verify: OK\n' : 'verify: FAILED\n');
  return report.ok;
}

/** The whole `simulate` run, also used by `serve --fleet` on a schedule. */
export async function simulate(
  flags: SimulateFlags,
  env: Record<string, string | undefined>,
  out: NodeJS.WriteStream | undefined,
): Promise<SimulationResult> {
  const config = configFromFlags(flags, env);
  const schemas: SchemaSet = loadSchemas(config.schemasDir);
  const fleet = loadFleetWithFlags(flags);
  const scenario = flags.scenario ? loadScenario(flags.scenario) : EMPTY_SCENARIO;
  const plan = planWithScenario(fleet, scenario, schemas);
  if (flags.dryRun) {
    printPlannedMessages(plan);
    return { fleet, counters: emptyCounters(fleet.devices.length), groundTruthFile: '' };
  }
  const run: PreparedRun = { config, schemas, fleet, scenario, plan };
  const { counters, record } = await runPlannedFleet(run, flags, out);
  const groundTruthFile = await writeGroundTruth(run, flags, counters, record);
  out?.write(
    `done: ${progressLine(counters)}; ${counters.failedPublishes} publishes failed\nground truth: ${groundTruthFile}\n`,
  );
  if (!flags.verify) return { fleet, counters, groundTruthFile };
  return { fleet, counters, groundTruthFile, verified: await verifyOutcome(run, record, out) };
}

export function registerSimulateCommand(program: Command, env: Record<string, string | undefined>): void {
  addRegistryOption(
    program
      .command('simulate')
      .description('run a simulated fleet of devices against a gateway over MQTT')
      .requiredOption('--fleet <file>', 'fleet file (simulators/fleets/*.yaml)')
      .option('--scenario <file>', 'scenario file (simulators/scenarios/*.yaml)')
      .option('--speed <n>', 'simulated seconds per real second (overrides the fleet)')
      .option('--seed <n>', 'random seed (overrides the fleet)')
      .option('--start <time>', 'start of simulated time: RFC 3339, now or now-2h (overrides the fleet)')
      .option('--duration <d>', 'simulated time to run, e.g. 2h (overrides the fleet)')
      .option('--mqtt-url <url>', 'gateway MQTT address', 'mqtt://127.0.0.1:1883')
      .option('--influx-url <url>', 'InfluxDB URL the gateway writes to (for --verify)')
      .option('--influx-db <name>', 'InfluxDB database the gateway writes to (for --verify)')
      .option(
        '--data-dir <dir>',
        "the gateway's data folder (rejects log for --verify; ground truth goes under it)",
      )
      .option('--schemas-dir <dir>', 'device schema folder')
      .option('--ack-log <file>', 'write one NDJSON line per acknowledged reading')
      .option('--ground-truth <file>', 'where to write the ground truth (default: DATA_DIR/simulations/)')
      .option(
        '--verify',
        'afterwards, check InfluxDB and the rejects log against what was acknowledged; exit 1 on a difference',
      )
      .option('--dry-run', 'print the messages the fleet would send (NDJSON) without connecting'),
  ).action(async (flags: SimulateFlags) => {
    const result = await simulate(flags, env, flags.dryRun ? undefined : process.stderr);
    if (result.verified === false) process.exitCode = 1;
  });
}
