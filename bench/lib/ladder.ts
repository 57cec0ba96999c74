// How the e2e ladder walks its rates. A first run climbs from the bottom rung until one fails. A later
// run resumes at the first run's sustained rung: it climbs while rungs pass, and if that rung fails
// it walks down until one passes, so that every run ends with a sustained rate of its own (or none
// when even the bottom rung fails).

export interface Climb<T> {
  /** The highest rung that passed, with what tryRung returned for it. */
  best?: { index: number; result: T };
  /** Rung indices in the order they were tried. */
  tried: number[];
}

export async function climb<T>(
  rungCount: number,
  resumeAt: number | undefined,
  tryRung: (index: number) => Promise<{ pass: boolean; result: T }>,
): Promise<Climb<T>> {
  const tried: number[] = [];
  let best: Climb<T>['best'];
  let descending = false;
  let i = resumeAt === undefined ? 0 : Math.min(Math.max(0, resumeAt), rungCount - 1);
  while (i >= 0 && i < rungCount) {
    tried.push(i);
    const { pass, result } = await tryRung(i);
    if (pass) {
      best = { index: i, result };
      if (descending) break;
      i++;
    } else if (!best && resumeAt !== undefined) {
      descending = true;
      i--;
    } else break;
  }
  return best ? { best, tried } : { tried };
}
