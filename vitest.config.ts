import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Property tests without a seed of their own share a fixed one (LATTICE_FC_SEED varies it).
    setupFiles: ['test/setup/fastCheckSeed.ts'],
    // GPU tests share one software adapter; browser tests start Chromium. Neither likes parallel files
    // on a 2-core machine, so files run one at a time and each test gets a generous budget.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
