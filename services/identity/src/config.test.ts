import { randomBytes } from 'node:crypto';
import { calendlyClientOptionsOf } from '@calsync/service-kit';
import { loadIdentityConfig } from './config';

const required = {
  DATABASE_URL: 'postgres://localhost/x',
  SEALING_KEYS: `k1=${randomBytes(32).toString('base64')}`,
  SEALING_ACTIVE_KEY_ID: 'k1',
  GRPC_PLAINTEXT: 'true',
};

describe('Calendly client configuration', () => {
  it('keeps the defaults identity has always had (a 5 s retry wait cap)', () => {
    expect(calendlyClientOptionsOf(loadIdentityConfig(required))).toEqual({
      timeoutMs: 10_000,
      maxRetries: 2,
      maxRetryDelayMs: 5_000,
    });
  });

  it('passes set values on and refuses bad ones with a clear message', () => {
    expect(
      calendlyClientOptionsOf(
        loadIdentityConfig({
          ...required,
          CALENDLY_TIMEOUT_MS: '2000',
          CALENDLY_MAX_RETRIES: '0',
          CALENDLY_MAX_RETRY_DELAY_MS: '1000',
        }),
      ),
    ).toEqual({ timeoutMs: 2_000, maxRetries: 0, maxRetryDelayMs: 1_000 });
    expect(() => loadIdentityConfig({ ...required, CALENDLY_TIMEOUT_MS: '99' })).toThrow(
      'CALENDLY_TIMEOUT_MS: must be at least 100',
    );
    expect(() => loadIdentityConfig({ ...required, CALENDLY_MAX_RETRY_DELAY_MS: '1.5' })).toThrow(
      'CALENDLY_MAX_RETRY_DELAY_MS: must be a whole number',
    );
  });
});
