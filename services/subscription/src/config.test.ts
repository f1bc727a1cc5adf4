import { randomBytes } from 'node:crypto';
import { ConfigError } from '@calsync/service-kit';
import { loadSubscriptionConfig } from './config';

const required = {
  DATABASE_URL: 'postgres://localhost/x',
  NATS_URL: 'nats://localhost:4222',
  IDENTITY_ADDR: 'id:50051',
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
