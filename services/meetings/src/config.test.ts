import { ConfigError, calendlyClientOptionsOf } from '@calsync/service-kit';
import { loadMeetingsConfig } from './config';

const required = {
  DATABASE_URL: 'postgres://localhost/x',
  NATS_URL: 'nats://localhost:4222',
  IDENTITY_ADDR: 'id:50051',
  GRPC_TLS_CERT_FILE: '/var/run/calsync/grpc/tls.crt',
  GRPC_TLS_KEY_FILE: '/var/run/calsync/grpc/tls.key',
  GRPC_TLS_CA_FILE: '/var/run/calsync/grpc/ca.crt',
};

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(loadMeetingsConfig(required)).toMatchObject({
      GRPC_PORT: 50053,
      METRICS_PORT: 9103,
      DATABASE_SCHEMA: 'meetings',
      CONSUMER_DURABLE_NAME: 'meetings',
      CONSUMER_MAX_DELIVER: 5,
      CONSUMER_BACKOFF_MS: [1000, 5000, 15000],
      CONSUMER_BATCH_SIZE: 50,
      CALENDLY_API_URL: 'https://api.calendly.com',
    });
  });

  it('names every missing or bad variable', () => {
    try {
      loadMeetingsConfig({
        NATS_URL: 'nats://localhost:4222',
        CONSUMER_BACKOFF_MS: '1000,soon',
        CONSUMER_MAX_DELIVER: '1',
        CONSUMER_DURABLE_NAME: 'has spaces',
      });
      throw new Error('accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.map((problem) => problem.variable).sort()).toEqual([
        'CONSUMER_BACKOFF_MS',
        'CONSUMER_DURABLE_NAME',
        'CONSUMER_MAX_DELIVER',
        'DATABASE_URL',
        'IDENTITY_ADDR',
      ]);
    }
  });
});

describe('Calendly client configuration', () => {
  it("defaults to the client's own and passes set values on", () => {
    expect(loadMeetingsConfig(required)).toMatchObject({
      CALENDLY_TIMEOUT_MS: 10_000,
      CALENDLY_MAX_RETRIES: 2,
      CALENDLY_MAX_RETRY_DELAY_MS: 10_000,
    });
    expect(
      calendlyClientOptionsOf(
        loadMeetingsConfig({ ...required, CALENDLY_TIMEOUT_MS: '3000', CALENDLY_MAX_RETRIES: '4' }),
      ),
    ).toEqual({ timeoutMs: 3_000, maxRetries: 4, maxRetryDelayMs: 10_000 });
  });

  it('refuses a bad value with a clear message', () => {
    expect(() => loadMeetingsConfig({ ...required, CALENDLY_TIMEOUT_MS: 'soon' })).toThrow(
      'CALENDLY_TIMEOUT_MS: must be a whole number',
    );
  });
});
