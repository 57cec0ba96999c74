// `livinglab serve --fleet FILE`: simulated fleets inside the gateway process, each on its fleet's
// cron schedule (node-cron, one run at a time per fleet), or once at start when it has none. They
// connect to the gateway's own MQTT port like any device.
import { type ScheduledTask, schedule, validate } from 'node-cron';
import { loadFleet } from '../../simulators/fleet.js';
import type { App } from '../app.js';
import { GatewayError } from '../errors.js';
import { simulate } from './simulate.js';

export interface FleetScheduler {
  stop(): Promise<void>;
}

export function startFleets(
  app: App,
  files: string[],
  env: Record<string, string | undefined>,
): FleetScheduler {
  const tasks: ScheduledTask[] = [];
  const abort = new AbortController();
  const running = new Set<Promise<unknown>>();
  const log = app.log.child({ module: 'jobs.fleet' });
  for (const file of files) {
    const fleet = loadFleet(file);
    const run = async () => {
      const started = Date.now();
      log.info({ fleet: fleet.name, devices: fleet.devices.length }, 'simulated fleet run starting');
      const p = simulate(
        {
          fleet: file,
          mqttUrl: `mqtt://127.0.0.1:${app.mqttPort}`,
          registry: app.config.registry,
          secretsFile: app.config.secretsFile,
          dataDir: app.config.dataDir,
          influxUrl: app.config.influx.url,
          influxDb: app.config.influx.db,
          schemasDir: app.config.schemasDir,
          signal: abort.signal,
        },
        env,
        undefined,
      ).then(
        (r) =>
          log.info(
            {
              fleet: fleet.name,
              readings: r.counters.readingsAcked,
              seconds: Math.round((Date.now() - started) / 1000),
            },
            'simulated fleet run finished',
          ),
        (err: Error) => log.error({ fleet: fleet.name, err }, 'simulated fleet run failed'),
      );
      running.add(p);
      await p;
      running.delete(p);
    };
    if (fleet.schedule) {
      if (!validate(fleet.schedule))
        throw new GatewayError(
          'LL_INPUT_INVALID',
          `${file}: schedule "${fleet.schedule}" is not a cron expression`,
        );
      tasks.push(schedule(fleet.schedule, run, { name: `fleet-${fleet.name}`, noOverlap: true }));
      log.info({ fleet: fleet.name, schedule: fleet.schedule }, 'simulated fleet scheduled');
    } else {
      void run();
    }
  }
  return {
    async stop() {
      for (const t of tasks) await t.stop();
      abort.abort();
      await Promise.allSettled([...running]);
    },
  };
}
