import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time: vitest's default here was one (the suite ran file after file on two
    // cores, 10.5 min). Every test starts its own processes on free ports and its own folders, so
    // files do not share state; timing-sensitive checks wait for events, never for wall-clock bounds.
    maxWorkers: 2,
    coverage: { provider: 'v8', include: ['src/**'] },
  },
});
