/** One jest configuration for every workspace: TypeScript through swc, real infrastructure from scripts/test-infra. */
const project = (displayName, testMatch) => ({
  displayName,
  testMatch,
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs', ignoreDynamic: true },
      },
    ],
  },
});

module.exports = {
  testTimeout: 60_000,
  globalSetup: '<rootDir>/scripts/test-infra/global-setup.mjs',
  globalTeardown: '<rootDir>/scripts/test-infra/global-teardown.mjs',
  // Tests wait on real servers far more than they compute: two cores keep more than one file busy.
  maxWorkers: 3,
  projects: [
    project('services', [
      '<rootDir>/services/*/src/**/*.test.ts',
      '<rootDir>/services/*/test/**/*.test.ts',
      '<rootDir>/proto/src/**/*.test.ts',
    ]),
    // The whole system as real processes, booted exactly as `npm run dev` boots it.
    project('e2e', ['<rootDir>/scripts/e2e/**/*.test.ts']),
  ],
};
