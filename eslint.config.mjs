import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Domain code never imports a transport: gRPC services and clients, Koa routes and NATS
// publishers and consumers are the adapters, named by their folder or role suffix
// (CONTRIBUTING.md). `upstream/` holds a service's clients of the other calsync services.
const adapters = [
  '**/main.ts',
  '**/*.test.ts',
  '**/testing/**',
  '**/grpc/**',
  '**/http/**',
  '**/consumer/**',
  '**/upstream/**',
  '**/health/**',
  '**/*-routes.ts',
  '**/*-middleware.ts',
  '**/*-publisher.ts',
  '**/*-stream.ts',
];
const transportPackages = {
  group: ['@grpc/*', 'koa', 'koa-*', '@koa/*', 'nats'],
  message:
    'domain code never imports a transport; put this in the service adapter (grpc/, upstream/, *-routes.ts, consumer/)',
};
// The kit's gRPC side: statuses and GrpcError belong to the adapter's one error table (docs/errors.md).
const kitGrpc = {
  name: '@calsync/service-kit',
  importNames: [
    'GrpcError',
    'GrpcStatus',
    'hasCode',
    'reasonOf',
    'reasonMetadataKey',
    'bindService',
    'createGrpcServer',
    'createGrpcClient',
  ],
  message:
    'domain code raises its own errors (src/errors.ts); the gRPC adapter maps them in its toGrpcError table, and clients of other services live in upstream/ (docs/errors.md)',
};

export default tseslint.config(
  {
    // .calsync-dev/ holds npm run dev's copy of the demo page (and its generated config).
    ignores: [
      '**/dist/**',
      '**/gen/**',
      '**/node_modules/**',
      '**/.turbo/**',
      'deploy/**',
      'coverage/**',
      '.calsync-dev/**',
      '.dev/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js', '**/*.cjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        module: 'writable',
        require: 'readonly',
        __dirname: 'readonly',
        globalThis: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
      },
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['scripts/demo/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly',
        document: 'readonly',
        localStorage: 'readonly',
        URLSearchParams: 'readonly',
        EventSource: 'readonly',
      },
    },
  },
  {
    files: ['**/*.test.ts', 'scripts/**'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['services/{identity,subscription,meetings,gateway}/src/**/*.ts'],
    ignores: adapters,
    rules: { 'no-restricted-imports': ['error', { patterns: [transportPackages] }] },
  },
  {
    files: ['services/{identity,subscription,meetings,gateway}/src/**/*.ts'],
    ignores: adapters,
    rules: { 'no-restricted-imports': ['error', { patterns: [transportPackages], paths: [kitGrpc] }] },
  },
);
