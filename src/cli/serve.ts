// `livinglab serve`: run the gateway until SIGINT/SIGTERM, then stop in order.
import type { Command } from 'commander';
import { buildApp } from '../app.js';
import { loadOpsToken } from '../config/load.js';
import { type FleetScheduler, startFleets } from './fleet-schedule.js';
import { addServeOptions, type CommonFlags, configFromFlags } from './options.js';

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
    const opsToken = loadOpsToken(config, env);
    const app = buildApp(config, opsToken ? { opsToken } : {});
    let fleets: FleetScheduler | undefined;
    const stop = async (signal: string) => {
      app.log.info({ signal }, 'stopping');
      await fleets?.stop();
      await app.stop();
      app.log.flush();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    try {
      await app.start();
    } catch (err) {
      await app.stop().catch(() => undefined);
      throw err;
    }
    if (opts.fleet?.length) {
      try {
        fleets = startFleets(app, opts.fleet, env);
      } catch (err) {
        await app.stop().catch(() => undefined);
        throw err;
      }
    }
    const web = [app.wsPort && `ws port ${app.wsPort}`, app.wssPort && `wss port ${app.wssPort}`];
    const ws = web.some(Boolean)
      ? `MQTT over WebSocket on ${web.filter(Boolean).join(' and ')} (/mqtt), `
      : '';
    process.stderr.write(
      `livinglab: MQTT on port ${app.mqttPort}, HTTP on ${app.httpScheme}://localhost:${app.httpPort}/healthz, ` +
        `ops (/readyz, /metrics) on ${config.listeners.ops.host}:${app.opsPort}, ` +
        `${ws}writing to ${config.influx.url} database "${config.influx.db}"\n`,
    );
  });
}
