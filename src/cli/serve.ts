// `livinglab serve`: take the data folder, run the gateway until SIGINT/SIGTERM, then stop in order.
// A signal stops the process in every state, start-up included: a start stuck on a slow disk or an
// InfluxDB that accepts connections but never answers is not waited for (what it has opened is
// stopped; the spool is safe on disk as after a crash), and a hard deadline ends the process if
// even stopping hangs.
import type { Command } from 'commander';
import { type App, buildApp } from '../app.js';
import { loadBrokerHooksToken, loadBrokerPassword, loadOpsToken } from '../config/load.js';
import { lockDataDir } from '../storage/data-lock.js';
import { type FleetScheduler, startFleets } from './fleet-schedule.js';
import { addServeOptions, type CommonFlags, configFromFlags } from './options.js';

/** Beyond the drain's shutdown deadline, how long stopping may take before the process just exits. */
const STOP_MARGIN_MS = 10_000;

export function registerServeCommand(program: Command, env: Record<string, string | undefined>): void {
  addServeOptions(
    program
      .command('serve')
      .description(
        'run the gateway: embedded MQTT broker, validation, spool, InfluxDB writer, HTTP health and metrics',
      )
      .option('--fleet <file...>', 'also run these simulated fleets (on their `schedule`, or once at start)'),
  ).action(async (opts: CommonFlags & { fleet?: string[] }) => {
    const config = configFromFlags(opts, env);
    // The lock first, before anything reads the spool: a second gateway on this folder stops here.
    const lock = await lockDataDir(config.dataDir);
    let app: App;
    try {
      const opsToken = loadOpsToken(config, env);
      const brokerHooksToken = loadBrokerHooksToken(config, env);
      const brokerPassword = config.source === 'external' ? loadBrokerPassword(config, env) : undefined;
      app = buildApp(config, {
        ...(opsToken ? { opsToken } : {}),
        ...(brokerHooksToken ? { brokerHooksToken } : {}),
        ...(brokerPassword !== undefined ? { brokerPassword } : {}),
      });
    } catch (err) {
      await lock.release();
      throw err;
    }
    let fleets: FleetScheduler | undefined;
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      app.log.info({ signal }, 'stopping');
      setTimeout(() => {
        app.log.error({ signal }, 'could not stop within the shutdown deadline; exiting');
        app.log.flush();
        process.exit(1);
      }, config.shutdownTimeoutMs + STOP_MARGIN_MS).unref();
      await fleets?.stop();
      await app.stop();
      await lock.release();
      app.log.flush();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    try {
      await app.start();
    } catch (err) {
      // Stopped by a signal half-way: what failed then is the stop's doing, and stop() exits.
      if (stopping) return;
      await app.stop().catch(() => undefined);
      await lock.release();
      throw err;
    }
    // A signal during start-up: stop() owns the rest.
    if (stopping) return;
    if (opts.fleet?.length) {
      try {
        fleets = startFleets(app, opts.fleet, env);
      } catch (err) {
        await app.stop().catch(() => undefined);
        await lock.release();
        throw err;
      }
    }
    const web = [app.wsPort && `ws port ${app.wsPort}`, app.wssPort && `wss port ${app.wssPort}`];
    const ws = web.some(Boolean)
      ? `MQTT over WebSocket on ${web.filter(Boolean).join(' and ')} (/mqtt), `
      : '';
    const mqttFrom =
      config.source === 'external' ? `MQTT from ${config.external.url}` : `MQTT on port ${app.mqttPort}`;
    process.stderr.write(
      `livinglab: ${mqttFrom}, HTTP on ${app.httpScheme}://localhost:${app.httpPort}/healthz, ` +
        `ops (/readyz, /metrics) on ${config.listeners.ops.host}:${app.opsPort}, ` +
        `${ws}writing to ${config.influx.url} database "${config.influx.db}"\n`,
    );
  });
}
