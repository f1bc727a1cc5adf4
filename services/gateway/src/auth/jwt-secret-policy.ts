import { createHash } from 'node:crypto';

/**
 * Secrets that appear in this repository (development defaults, documentation, stand-ins of the
 * chart checks), kept as SHA-256 digests: anyone can read them, so no production gateway may
 * trust a token signed with one. `published-secrets.test.ts` finds every JWT secret written in
 * the repository and fails until it is here or too weak to pass anyway.
 */
const publishedSecretDigests = new Set([
  // calsync-dev-jwt-secret-change-me: scripts/lib/dev-jwt.cjs, deploy/values-dev.yaml
  '7fbe7186af07d00c4813c49b4595767446103a2f1ce96bcce0c77a92344fa5a6',
  // a-jwt-secret-of-at-least-thirty-two-characters: once the stand-in of deploy/tools/service-config.test.mjs
  '8c61a8513eec332057d999a359a3d990706ca073d72b65539e53a77db8f50d4f',
  // calsync-smoke-jwt-secret-of-32-characters-or-more: deploy/helm/calsync/ci/smoke-values.yaml
  'd733e061cf6d5e5808fe949b3df54e33cc77b106ec904b9876d29da5c71e6323',
  // a-test-secret-that-is-long-enough-for-hs256: services/gateway/src/auth/jwt-verifier.test.ts
  'c5be00202e43df4e9f385e814e03b02235e3bf7d19602753ed9dd770e6a8f27f',
]);

/** zxcvbn's estimate of the guesses needed, as a power of ten: 10^30 is about 100 bits. */
const minGuessesLog10 = 30;
/**
 * zxcvbn's cost grows faster than the length (a 128-character secret takes seconds): only this
 * much is estimated. 64 random characters are far above the bar, and a secret whose first 64
 * characters are guessable is refused even if more follows.
 */
const maxEstimatedLength = 64;

const digest = (secret: string) => createHash('sha256').update(secret).digest('hex');

/**
 * Why `secret` must not sign the platform's tokens in production, or undefined when it may:
 * published in this repository, or guessable (zxcvbn with its common and English dictionaries
 * finds repeats, sequences, keyboard walks and words; a random 32-character secret passes).
 */
export function productionJwtSecretProblem(secret: string): string | undefined {
  const advice = 'generate one with `openssl rand -base64 48`';
  if (publishedSecretDigests.has(digest(secret))) {
    return `is a value published in the calsync repository (a development default); ${advice}`;
  }
  const guessesLog10 = estimateGuessesLog10(secret);
  if (guessesLog10 < minGuessesLog10) {
    const bits = Math.floor(guessesLog10 * Math.log2(10));
    return `has too little entropy to be a secret (about ${bits} bits, at least ${Math.ceil(minGuessesLog10 * Math.log2(10))} needed); ${advice}`;
  }
  return undefined;
}

let estimator: { check(secret: string): { guessesLog10: number } } | undefined;

/** Loaded on first use: the dictionaries are large and only production start-up needs them. */
function estimateGuessesLog10(secret: string): number {
  estimator ??= createEstimator();
  return estimator.check(secret.slice(0, maxEstimatedLength)).guessesLog10;
}

function createEstimator() {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { ZxcvbnFactory } = require('@zxcvbn-ts/core') as typeof import('@zxcvbn-ts/core');
  const common = require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
  const english = require('@zxcvbn-ts/language-en') as typeof import('@zxcvbn-ts/language-en');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return new ZxcvbnFactory({
    dictionary: { ...common.dictionary, ...english.dictionary },
    graphs: common.adjacencyGraphs,
  });
}
