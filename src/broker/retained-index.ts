// aedes' memory persistence answers every SUBSCRIBE by matching the filter against *all* retained
// messages. With one retained status per device, 10,000 devices subscribing to their own
// `rejected` topic cost 10,000 × 10,000 matches and pinned the broker at 100 % CPU while devices
// connected (measured here, see the issue #3 note). A filter without wildcards can match only the
// topic it names: answer those from our own index, and leave wildcard filters to aedes.
import { Readable } from 'node:stream';
import memoryModule from 'aedes-persistence';

type Packet = { topic: string; payload: Buffer | string };
interface RetainedPersistence {
  storeRetained(packet: Packet, cb?: (err?: Error | null) => void): Promise<void> | undefined;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

// The package's default export is the factory aedes itself uses (CommonJS module.exports).
const memory = memoryModule as unknown as () => RetainedPersistence;

export function createIndexedPersistence(): object {
  const base = memory();
  const retained = new Map<string, Packet>();
  const storeRetained = base.storeRetained.bind(base);
  const combi = base.createRetainedStreamCombi.bind(base);
  const remember = (packet: Packet) => {
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set(packet.topic, { ...packet });
  };
  base.storeRetained = (packet, cb) => {
    remember(packet);
    return storeRetained(packet, cb);
  };
  base.createRetainedStreamCombi = (patterns) => {
    if (patterns.some((p) => p.includes('+') || p.includes('#'))) return combi(patterns);
    return Readable.from(patterns.map((p) => retained.get(p)).filter((p): p is Packet => p !== undefined));
  };
  return base;
}
