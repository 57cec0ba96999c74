// A login client process for bench/tls.ts: logs its share of devices in (CONNECT with password,
// CONNACK, close) with a number of logins in flight. A process of its own, as in publisher.ts, so
// that the client side's TLS handshakes do not share one core with the clients of other shares.
// IPC: the parent sends a LoginJob, the child answers {type:'ready'}, the parent sends {type:'go'},
// the child answers {type:'done', result}.
import mqtt from 'mqtt';
import type { PublisherDevice } from './publisher.js';

export interface LoginJob {
  readonly url: string;
  /** CA certificate (PEM) to trust when url is mqtts://. */
  readonly ca?: string;
  readonly devices: readonly PublisherDevice[];
  readonly concurrency: number;
}

export interface LoginResult {
  readonly failed: number;
  /** This process's CPU (user + system) over the logins, in seconds. */
  readonly cpuSeconds: number;
}

/** One login, up to the CONNACK, then the connection is closed. */
function login(job: LoginJob, device: PublisherDevice): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(job.url, {
      clientId: device.id,
      username: device.id,
      ...(device.password ? { password: device.password } : {}),
      ...(job.ca ? { ca: job.ca } : {}),
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    c.once('connect', () => {
      c.end(true, () => resolve());
    });
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

async function loginAll(job: LoginJob): Promise<LoginResult> {
  const cpu0 = process.cpuUsage();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < job.devices.length) {
      const d = job.devices[next++] as PublisherDevice;
      await login(job, d).catch(() => failed++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.concurrency, job.devices.length) }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { failed, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

process.once('message', (job: LoginJob) => {
  process.send?.({ type: 'ready' });
  process.once('message', async () => {
    process.send?.({ type: 'done', result: await loginAll(job) });
    process.disconnect?.();
  });
});
