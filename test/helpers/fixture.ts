// The integration-test lab: one real influxd per test file and the gateways that run against it.
// It owns starting them and registering their cleanup where they are created, so no test file
// repeats the influxd-plus-gateway set-up. It never mocks a service: every gateway is buildApp on
// port 0 against the real influxd (test/helpers/gateway.ts, test/helpers/influxd.ts).
import { afterAll, afterEach, beforeAll, onTestFinished } from 'vitest';
import { type GatewayOptions, startGateway, type TestGateway } from './gateway.js';
import { type Influxd, startInfluxd } from './influxd.js';

/** A gateway's options without its InfluxDB address, which the lab fills in (a caller may override it). */
export type LabGatewayOptions = Partial<GatewayOptions>;

/** Options given when the suite is declared, or a function of things started in an earlier beforeAll. */
export type LabGatewaySpec = LabGatewayOptions | (() => LabGatewayOptions);

export interface Lab {
  /** The file's influxd; read it inside hooks and tests only (it starts in beforeAll). */
  readonly influx: Influxd;
  /** The gateway given to useLab or useGateway; throws when there is none. */
  readonly gw: TestGateway;
  /** A gateway for the running test only, on this lab's influxd; stopped when the test finishes. */
  startGateway(opts?: LabGatewayOptions): Promise<TestGateway>;
  /** A gateway for the enclosing describe block, on this lab's influxd; stopped after its last test. */
  useGateway(spec: LabGatewaySpec): Lab;
}

function launch(influx: Influxd, spec: LabGatewaySpec | undefined): Promise<TestGateway> {
  const opts = typeof spec === 'function' ? spec() : (spec ?? {});
  // Devices default to none: research and export tests write their points straight to InfluxDB.
  return startGateway({ ...opts, devices: opts.devices ?? [], influxUrl: opts.influxUrl ?? influx.url });
}

function labOf(influx: () => Influxd, gw: () => TestGateway | undefined): Lab {
  const lab: Lab = {
    get influx() {
      return influx();
    },
    get gw() {
      const g = gw();
      if (!g) throw new Error('this lab has no gateway: give useLab or useGateway its options');
      return g;
    },
    async startGateway(opts) {
      const g = await launch(influx(), opts);
      onTestFinished(() => g.stop());
      return g;
    },
    useGateway(spec) {
      let g: TestGateway | undefined;
      beforeAll(async () => {
        g = await launch(influx(), spec);
      });
      afterAll(async () => {
        await g?.stop();
      });
      return labOf(influx, () => g);
    },
  };
  return lab;
}

/**
 * Declares the file's lab: a real influxd started before the first test and, when `gateway` is
 * given, a gateway on it; both are stopped after the last test (the gateway first).
 * Call it once at the top of a test file; hooks declared after it see both running.
 */
export function useLab(gateway?: LabGatewaySpec): Lab {
  let influx: Influxd | undefined;
  const started = () => {
    if (!influx) throw new Error('the lab starts in beforeAll: read it inside hooks and tests');
    return influx;
  };
  beforeAll(async () => {
    influx = await startInfluxd();
  });
  // A test that stops influxd (an outage) and then fails before restarting it must not leave the
  // file's later tests without their database.
  afterEach(async () => {
    if (influx && !influx.running()) await influx.restart();
  });
  afterAll(async () => {
    await influx?.stop();
  });
  return gateway === undefined
    ? labOf(started, () => undefined)
    : labOf(started, () => undefined).useGateway(gateway);
}
