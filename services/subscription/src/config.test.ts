import { randomBytes } from 'node:crypto';
import { ConfigError, calendlyClientOptionsOf } from '@calsync/service-kit';
import { loadCommandConfig, loadSubscriptionConfig } from './config';

const required = {
  DATABASE_URL: 'postgres://localhost/x',
  NATS_URL: 'nats://localhost:4222',
  IDENTITY_ADDR: 'id:50051',
  MEETINGS_ADDR: 'meetings:50053',
  PUBLIC_BASE_URL: 'https://calsync.example.com',
  SEALING_KEYS: `k1=${randomBytes(32).toString('base64')}`,
  SEALING_ACTIVE_KEY_ID: 'k1',
  GRPC_PLAINTEXT: 'true',
};

const problemsOf = (source: Record<string, string>) => {
  try {
    loadSubscriptionConfig({ ...required, ...source });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems.map((problem) => problem.variable).sort();
  }
  throw new Error('accepted');
};

describe('polling configuration', () => {
  it('has the documented defaults', () => {
    expect(loadSubscriptionConfig(required)).toMatchObject({
      POLL_INTERVAL_SECONDS: 240,
      POLL_FRESHNESS_SECONDS: 300,
      POLL_NEAR_DAYS: 14,
      POLL_SWEEP_INTERVAL_SECONDS: 3600,
      POLL_SWEEP_PAST_DAYS: 7,
    });
  });

  it('refuses a freshness the interval cannot keep, a sweep more frequent than a poll, and non-numbers', () => {
    expect(problemsOf({ POLL_INTERVAL_SECONDS: '300', POLL_FRESHNESS_SECONDS: '300' })).toEqual([
      'POLL_FRESHNESS_SECONDS',
    ]);
    expect(problemsOf({ POLL_INTERVAL_SECONDS: '60', POLL_SWEEP_INTERVAL_SECONDS: '30' })).toEqual([
      'POLL_SWEEP_INTERVAL_SECONDS',
    ]);
    expect(problemsOf({ POLL_NEAR_DAYS: '0', POLL_SWEEP_PAST_DAYS: 'week' })).toEqual([
      'POLL_NEAR_DAYS',
      'POLL_SWEEP_PAST_DAYS',
    ]);
  });
});

describe('Calendly client configuration', () => {
  it("defaults to the client's own, in the service and in its commands", () => {
    const defaults = { timeoutMs: 10_000, maxRetries: 2, maxRetryDelayMs: 10_000 };
    expect(calendlyClientOptionsOf(loadSubscriptionConfig(required))).toEqual(defaults);
    expect(calendlyClientOptionsOf(loadCommandConfig(required))).toEqual(defaults);
  });

  it('passes set values on and refuses bad ones', () => {
    expect(
      calendlyClientOptionsOf(loadSubscriptionConfig({ ...required, CALENDLY_MAX_RETRY_DELAY_MS: '2500' })),
    ).toEqual({ timeoutMs: 10_000, maxRetries: 2, maxRetryDelayMs: 2_500 });
    expect(problemsOf({ CALENDLY_TIMEOUT_MS: '10', CALENDLY_MAX_RETRIES: '-1' })).toEqual([
      'CALENDLY_MAX_RETRIES',
      'CALENDLY_TIMEOUT_MS',
    ]);
  });
});
