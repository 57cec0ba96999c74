// Research set-up shared by the export and research-API tests: projects open around today, and the
// wait for the gateway to pick up a registry edit. It writes nothing itself; tests edit the registry.
import type { TestGateway } from './gateway.js';
import { eventually } from './mqtt.js';

const DAY_MS = 86_400_000;
/** "Today" is fixed once when the test file loads, so a run across UTC midnight sees one today. */
const TODAY = Date.now();

/** The UTC date `offset` days from today, as projects and consents take it (YYYY-MM-DD). */
export const dayFromToday = (offset: number) => new Date(TODAY + offset * DAY_MS).toISOString().slice(0, 10);

/** A project from ten days ago to tomorrow over `types`, releasing only `fields` when given. */
export function openProject(id: string, types: string[], fields?: string[]) {
  return { id, from: dayFromToday(-10), to: dayFromToday(1), types, ...(fields ? { fields } : {}) };
}

/** Resolves when the gateway's running registry holds `count` tokens (its file watcher has reloaded). */
export async function untilTokens(gw: TestGateway, count: number): Promise<void> {
  await eventually(
    async () => gw.app.registry.current().data.tokens.length,
    (n) => n === count,
  );
}

/** The rows of an NDJSON response body. */
export const ndjson = async (res: Response) =>
  (await res.text())
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
