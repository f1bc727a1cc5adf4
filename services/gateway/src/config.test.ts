import { randomBytes } from 'node:crypto';
import { ConfigError } from '@calsync/service-kit';
import { loadGatewayConfig, oauthRedirectUri } from './config';

const base = {
  NATS_URL: 'nats://127.0.0.1:4222',
  PUBLIC_BASE_URL: 'https://calsync.example.com/',
  APP_URL: 'https://app.example.com/settings',
  IDENTITY_ADDR: 'identity:50051',
  SUBSCRIPTION_ADDR: 'subscription:50052',
  MEETINGS_ADDR: '127.0.0.1:50053',
  AUTH_JWT_SECRET: 'x'.repeat(32),
  GRPC_TLS_CERT_FILE: '/var/run/calsync/grpc/tls.crt',
  GRPC_TLS_KEY_FILE: '/var/run/calsync/grpc/tls.key',
  GRPC_TLS_CA_FILE: '/var/run/calsync/grpc/ca.crt',
};

function problems(env: Record<string, string | undefined>): Record<string, string> {
  try {
    loadGatewayConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return Object.fromEntries(error.problems.map((p) => [p.variable, p.problem]));
    throw error;
  }
  throw new Error('configuration was accepted');
}

describe('gateway configuration', () => {
  it('has production defaults and derives the OAuth redirect from the public base URL', () => {
    const config = loadGatewayConfig(base);
    expect(config).toMatchObject({
      HTTP_PORT: 8080,
      HTTP_HOST: '0.0.0.0',
      NATS_SUBJECT_PREFIX: 'calsync',
      WEBHOOK_MAX_BODY_BYTES: 512 * 1024,
      EVENTS_STREAM_MAX_BYTES: -1,
      CORS_ORIGINS: [],
      AUTH_JWT_AUDIENCE: [],
    });
    expect(config.DEMO_DIR).toBeUndefined();
    expect(oauthRedirectUri(config)).toBe('https://calsync.example.com/api/calendly/oauth/callback');
    expect(oauthRedirectUri({ ...config, OAUTH_REDIRECT_URI: 'https://x.example/cb' })).toBe('https://x.example/cb');
  });

  it('names every missing variable', () => {
    expect(problems({})).toMatchObject({
      NATS_URL: 'is required',
      PUBLIC_BASE_URL: 'is required',
      APP_URL: 'is required',
      IDENTITY_ADDR: 'is required',
      SUBSCRIPTION_ADDR: 'is required',
      MEETINGS_ADDR: 'is required',
    });
  });

  it('needs exactly one of AUTH_JWT_SECRET and AUTH_JWKS_URL', () => {
    const { AUTH_JWT_SECRET: _secret, ...withoutSecret } = base;
    expect(problems(withoutSecret).AUTH_JWT_SECRET).toMatch(/required/);
    expect(problems({ ...base, AUTH_JWKS_URL: 'https://idp.example/jwks.json' }).AUTH_JWKS_URL).toMatch(/only one/);
    expect(loadGatewayConfig({ ...withoutSecret, AUTH_JWKS_URL: 'https://idp.example/jwks.json' }).AUTH_JWKS_URL).toBe(
      'https://idp.example/jwks.json',
    );
    expect(problems({ ...base, AUTH_JWT_SECRET: 'short' }).AUTH_JWT_SECRET).toMatch(/32 characters/);
  });

  describe('in production (NODE_ENV=production)', () => {
    const production = { ...base, NODE_ENV: 'production' };
    // Made here: any secret written in the repository is published, and refused.
    const strongSecret = randomBytes(36).toString('base64');

    it.each([
      ['the development default of npm run dev and values-dev.yaml', 'calsync-dev-jwt-secret-change-me', /published/],
      ['the stand-in of the chart checks', 'a-jwt-secret-of-at-least-thirty-two-characters', /published/],
      ['32 times the letter a', 'a'.repeat(32), /entropy/],
      ['a keyboard walk', 'qwertyuiopasdfghjklzxcvbnm1234567890', /entropy/],
      ['a sequence', 'abcdefghijklmnopqrstuvwxyz0123456789', /entropy/],
      ['a guessable beginning, whatever follows', `${'a'.repeat(64)}${'x9Kq2'.repeat(40)}`, /entropy/],
    ])('refuses to start with %s as AUTH_JWT_SECRET, saying why', (_label, secret, reason) => {
      expect(problems({ ...production, AUTH_JWT_SECRET: secret }).AUTH_JWT_SECRET).toMatch(reason);
    });

    it('starts with a random secret', () => {
      expect(loadGatewayConfig({ ...production, AUTH_JWT_SECRET: strongSecret }).AUTH_JWT_SECRET).toBe(strongSecret);
    });

    it('lets development and tests use the published development secret', () => {
      const development = { ...base, NODE_ENV: 'development', AUTH_JWT_SECRET: 'calsync-dev-jwt-secret-change-me' };
      expect(loadGatewayConfig(development).AUTH_JWT_SECRET).toBe('calsync-dev-jwt-secret-change-me');
    });
  });

  it('bounds the age of tokens: an hour unless AUTH_JWT_MAX_AGE_SECONDS says otherwise', () => {
    expect(loadGatewayConfig(base).AUTH_JWT_MAX_AGE_SECONDS).toBe(3600);
    expect(loadGatewayConfig({ ...base, AUTH_JWT_MAX_AGE_SECONDS: '300' }).AUTH_JWT_MAX_AGE_SECONDS).toBe(300);
    expect(problems({ ...base, AUTH_JWT_MAX_AGE_SECONDS: '0' }).AUTH_JWT_MAX_AGE_SECONDS).toBeDefined();
  });

  it('refuses addresses, origins and stream limits that cannot work', () => {
    expect(problems({ ...base, IDENTITY_ADDR: 'http://identity' }).IDENTITY_ADDR).toMatch(/host:port/);
    expect(problems({ ...base, SUBSCRIPTION_ADDR: 'sub-1:50052,sub-2:50052' }).SUBSCRIPTION_ADDR).toMatch(
      /one DNS name/,
    );
    expect(loadGatewayConfig({ ...base, SUBSCRIPTION_ADDR: '10.0.0.1:50052,10.0.0.2:50052' }).SUBSCRIPTION_ADDR).toBe(
      '10.0.0.1:50052,10.0.0.2:50052',
    );
    expect(problems({ ...base, CORS_ORIGINS: 'https://app.example.com/path' }).CORS_ORIGINS).toMatch(/not an origin/);
    expect(problems({ ...base, EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS: '60' })).toHaveProperty(
      'EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS',
    );
    expect(
      problems({ ...base, EVENTS_STREAM_MAX_AGE_SECONDS: '300', EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS: '600' })
        .EVENTS_STREAM_DUPLICATE_WINDOW_SECONDS,
    ).toMatch(/MAX_AGE/);
  });

  it('reads lists of origins and audiences', () => {
    const config = loadGatewayConfig({
      ...base,
      CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
      AUTH_JWT_AUDIENCE: 'calsync,platform',
    });
    expect(config.CORS_ORIGINS).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(config.AUTH_JWT_AUDIENCE).toEqual(['calsync', 'platform']);
  });
});
