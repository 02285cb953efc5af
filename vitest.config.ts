import { defineConfig } from 'vitest/config';

// Four projects so each layer runs alone:
//   unit        pure code: no broker, no JVM, no external tool (fast, property-based where an invariant exists)
//   deploy      the deployment files, checked with the tools they are for (kubectl, promtool,
//               openssl: `bash scripts/install-tools.sh`); no broker
//   integration the real local broker and registry (scripts/kafka/up.sh)
//   faults      exactly-once under SIGKILL / SIGSTOP, real worker processes
export default defineConfig({
  test: {
    // One shared broker on a 2-core machine: files run one at a time.
    fileParallelism: false,
    projects: [
      { test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/integration/**', 'test/faults/**', 'test/docs/**', 'test/deploy/**'] } },
      { test: { name: 'deploy', include: ['test/deploy/**/*.test.ts'], testTimeout: 60_000 } },
      {
        test: {
          name: 'integration',
          // test/docs: the README walkthrough and the docs' runnable blocks, run as written.
          include: ['test/integration/**/*.test.ts', 'test/docs/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
