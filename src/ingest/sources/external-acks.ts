// When the external source acknowledges a QoS 1 message to the broker: only once ingestion has
// committed it (or rejected it as bad input), and never while the spool is not taking messages.
// It owns the wait bound and the redelivery of what it left unacknowledged; it never drops a
// message: what it does not acknowledge stays with the broker, which sends it again when the
// session reconnects (MQTT 5 sends unacknowledged messages again only then, [MQTT-4.4.0-1]).
//
// Why a bound: MQTT.js handles one incoming packet at a time and goes on to the next (PINGRESP
// included) only when the previous one's handleMessage callback ran. A callback held for as long
// as a full spool waits for InfluxDB would stall the connection into a keepalive timeout and a
// reconnect loop (mqttjs/MQTT.js#1935). Calling the callback with an error sends no PUBACK and lets
// the loop go on (node_modules/mqtt/build/lib/handlers/publish.js): that is how a message is
// withheld here.
import type { Logger } from '../../log.js';

/** The error a withheld message's handleMessage callback gets: no PUBACK, the loop goes on. */
export class WithheldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WithheldError';
  }
}

export interface AckGateStats {
  /** Messages left unacknowledged with the broker (it sends them again on the next connection). */
  withheld: number;
  /** Reconnects made to have the broker send withheld messages again. */
  redeliveries: number;
}

export interface AckGateDeps {
  /** Longest time one message may wait for ingestion before it is withheld. */
  waitMs: number;
  /** Delays between redelivery attempts after ingestion refused a message (doubling). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Ends and re-opens the session so the broker sends every unacknowledged message again. */
  redeliver: () => void;
  log: Logger;
}

export interface AckGate {
  /**
   * Hands one QoS 1 message to `handling` unless an earlier one still overruns its wait, and calls
   * `done` exactly once: without an argument once `handling` resolved within the wait (PUBACK), with
   * a WithheldError when it rejected, overran or was not started (no PUBACK). Calls are serial
   * (MQTT.js waits for `done`).
   */
  run(handling: () => Promise<unknown>, done: (err?: Error) => void): void;
  /** A new connection: the broker sends every unacknowledged message again by itself. */
  connected(): void;
  /** Cancels a pending redelivery; idempotent. */
  stop(): void;
  readonly stats: Readonly<AckGateStats>;
}

interface Redelivery {
  /** Counts a message left with the broker (logged when the first one is). */
  withhold(why: string): void;
  /** Ingestion took a message, or refused one: the delay before the next reconnect follows. */
  settled(ok: boolean): void;
  /** Asks for a reconnect (after the current delay) when messages are owed. */
  schedule(): void;
  connected(): void;
  stop(): void;
}

/** What is owed to the broker and the reconnect that has it sent again, with backoff after refusals. */
function createRedelivery(deps: AckGateDeps, stats: AckGateStats, busy: () => boolean): Redelivery {
  let owed = 0;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const cancel = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const schedule = () => {
    if (timer || stopped || owed === 0) return;
    const delay = failures === 0 ? 0 : Math.min(deps.retryMaxMs, deps.retryBaseMs * 2 ** (failures - 1));
    timer = setTimeout(() => {
      timer = undefined;
      // Still in ingestion: its settling schedules again; nothing owed: a reconnect came first.
      if (stopped || owed === 0 || busy()) return;
      stats.redeliveries++;
      deps.log.info(
        { withheld: owed, attempt: failures },
        'asking the broker to send withheld messages again',
      );
      deps.redeliver();
    }, delay);
    timer.unref();
  };
  return {
    withhold(why) {
      if (owed === 0) deps.log.warn({ why }, 'acknowledgements withheld: the broker keeps the messages');
      owed++;
      stats.withheld++;
    },
    settled(ok) {
      failures = ok ? 0 : failures + 1;
    },
    schedule,
    connected() {
      owed = 0;
      cancel();
    },
    stop() {
      stopped = true;
      cancel();
    },
  };
}

export function createAckGate(deps: AckGateDeps): AckGate {
  const stats: AckGateStats = { withheld: 0, redeliveries: 0 };
  // A message that overran its wait and is still in ingestion: later ones are withheld unread, so
  // only one at a time waits in the spool's queue while it is full.
  let overrunning: Promise<unknown> | undefined;
  const owed = createRedelivery(deps, stats, () => overrunning !== undefined);

  const overrun = (handling: Promise<unknown>) => {
    owed.withhold('ingestion did not commit a message within external.ackWait');
    overrunning = handling;
    const settled = (ok: boolean) => {
      if (overrunning === handling) overrunning = undefined;
      owed.settled(ok);
      owed.schedule();
    };
    handling.then(
      () => settled(true),
      () => settled(false),
    );
  };

  return {
    stats,
    run(handling, done) {
      if (overrunning) {
        owed.withhold('an earlier message is still waiting for the spool');
        return done(new WithheldError('an earlier message is still waiting for the spool'));
      }
      const running = handling();
      let answered = false;
      const wait = setTimeout(() => {
        answered = true;
        overrun(running);
        done(new WithheldError('not committed within external.ackWait'));
      }, deps.waitMs);
      const answer = (err?: Error) => {
        if (answered) return;
        answered = true;
        clearTimeout(wait);
        owed.settled(!err);
        if (!err) return done();
        owed.withhold(err.message);
        owed.schedule();
        done(new WithheldError(err.message));
      };
      running.then(() => answer(), answer);
    },
    connected: () => owed.connected(),
    stop: () => owed.stop(),
  };
}
