import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  ConfigError,
  calendlyClientEnv,
  calendlyClientOptionsOf,
  commonEnv,
  grpcSecurityEnv,
  grpcSecurityOf,
  loadConfig,
  postgresEnv,
  sealingEnv,
  withActiveSealingKey,
  withGrpcSecurity,
} from './config';

const key = (byte: number) => Buffer.alloc(32, byte).toString('base64');
const schema = withActiveSealingKey(z.object({ ...commonEnv, ...postgresEnv('identity'), ...sealingEnv }));

describe('loadConfig', () => {
  const valid = {
    DATABASE_URL: 'postgres://localhost/calsync',
    SEALING_KEYS: `k1=${key(1)},k2=${key(2)}`,
    SEALING_ACTIVE_KEY_ID: 'k2',
  };

  it('parses defaults and typed values', () => {
    const config = loadConfig(schema, valid);
    expect(config.DATABASE_SCHEMA).toBe('identity');
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.MIGRATE_ONLY).toBe(false);
    expect([...config.SEALING_KEYS.keys()]).toEqual(['k1', 'k2']);
  });

  it('names a missing variable', () => {
    const { DATABASE_URL: _omitted, ...rest } = valid;
    expect(() => loadConfig(schema, rest)).toThrow(/DATABASE_URL: is required/);
  });

  it('names every bad variable at once', () => {
    try {
      loadConfig(schema, { ...valid, DATABASE_URL: 'not a url', DATABASE_POOL_MAX: 'many', LOG_LEVEL: 'loud' });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
        'DATABASE_POOL_MAX',
        'DATABASE_URL',
        'LOG_LEVEL',
      ]);
      expect((error as ConfigError).problems).toContainEqual({
        variable: 'DATABASE_POOL_MAX',
        problem: 'must be a whole number',
      });
    }
  });

  it('refuses a sealing key of the wrong length without echoing the key', () => {
    const shortKey = Buffer.alloc(16, 7).toString('base64');
    let message = '';
    try {
      loadConfig(schema, { ...valid, SEALING_KEYS: `k1=${shortKey}` });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/SEALING_KEYS: key "k1" must decode to 32 bytes/);
    expect(message).not.toContain(shortKey);
  });

  it('refuses an active key id that names no configured key', () => {
    expect(() => loadConfig(schema, { ...valid, SEALING_ACTIVE_KEY_ID: 'k9' })).toThrow(
      /SEALING_ACTIVE_KEY_ID: names no key in SEALING_KEYS \(k1, k2\)/,
    );
  });
});

describe('sealing keys in production', () => {
  const random = () => randomBytes(32).toString('base64');
  const production = (keys: string) =>
    loadConfig(schema, {
      DATABASE_URL: 'postgres://localhost/calsync',
      SEALING_KEYS: keys,
      SEALING_ACTIVE_KEY_ID: keys.split('=')[0],
      NODE_ENV: 'production',
    });

  // Every SEALING_KEYS value written in this repository (dev values, chart stand-ins, docs):
  // anyone can read them, so none may protect a production database.
  const repoRoot = join(__dirname, '..', '..', '..');
  const published = () => {
    const values = new Set<string>();
    const files = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' })
      .split('\n')
      .filter((file) => /\.(ts|js|mjs|cjs|ya?ml|md|sh|json|env)$/.test(file) && !file.endsWith('package-lock.json'));
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(join(repoRoot, file), 'utf8');
      } catch {
        continue; // listed but not checked out
      }
      for (const match of text.matchAll(
        /SEALING_KEYS["']?\s*[:=]\s*["'`]?([A-Za-z0-9_-]{1,32}=[A-Za-z0-9+/]{43}=[^"'`\s]*)/g,
      ))
        values.add(match[1]!);
    }
    return [...values];
  };

  it('refuses every sealing key published in this repository, naming the key id but not the key', () => {
    const values = published();
    expect(values.length).toBeGreaterThanOrEqual(2);
    for (const value of values) {
      let message = '';
      try {
        production(value);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/SEALING_KEYS: key "[\w-]+" decodes to printable text/);
      expect(message).not.toContain(value.split('=')[1]);
    }
  });

  it('refuses a key of few distinct bytes, and takes random keys', () => {
    expect(() => production(`zero=${key(0)}`)).toThrow(/key "zero" has too few distinct bytes/);
    expect([...production(`k1=${random()},k2=${random()}`).SEALING_KEYS.keys()]).toEqual(['k1', 'k2']);
  });

  it('takes the development keys outside production', () => {
    for (const value of published())
      expect(() =>
        loadConfig(schema, {
          DATABASE_URL: 'postgres://localhost/calsync',
          SEALING_KEYS: value,
          SEALING_ACTIVE_KEY_ID: value.split('=')[0],
        }),
      ).not.toThrow();
  });
});

describe('withGrpcSecurity', () => {
  const grpcSchema = withGrpcSecurity(z.object({ ...grpcSecurityEnv }));
  const files = {
    GRPC_TLS_CERT_FILE: '/certs/tls.crt',
    GRPC_TLS_KEY_FILE: '/certs/tls.key',
    GRPC_TLS_CA_FILE: '/certs/ca.crt',
  };

  it('requires the certificate, key and CA files unless plaintext is chosen', () => {
    expect(grpcSecurityOf(loadConfig(grpcSchema, files))).toEqual({
      mode: 'mtls',
      certFile: '/certs/tls.crt',
      keyFile: '/certs/tls.key',
      caFile: '/certs/ca.crt',
      reloadIntervalMs: 30_000,
    });
    expect(() => loadConfig(grpcSchema, {})).toThrow(
      /GRPC_TLS_CERT_FILE: is required .*GRPC_TLS_KEY_FILE: is required .*GRPC_TLS_CA_FILE: is required/,
    );
  });

  it('runs plaintext only when GRPC_PLAINTEXT=true, and then takes no certificate', () => {
    expect(grpcSecurityOf(loadConfig(grpcSchema, { GRPC_PLAINTEXT: 'true' }))).toEqual({ mode: 'plaintext' });
    expect(() => loadConfig(grpcSchema, { ...files, GRPC_PLAINTEXT: 'true' })).toThrow(
      /GRPC_TLS_CERT_FILE: must not be set with GRPC_PLAINTEXT=true/,
    );
  });
});

describe('calendlyClientEnv', () => {
  const calendlySchema = z.object({ ...calendlyClientEnv });

  it("defaults to the Calendly client's own timeout and retry budget", () => {
    expect(calendlyClientOptionsOf(loadConfig(calendlySchema, {}))).toEqual({
      timeoutMs: 10_000,
      maxRetries: 2,
      maxRetryDelayMs: 10_000,
    });
  });

  it('parses the variables into the client options', () => {
    const config = loadConfig(calendlySchema, {
      CALENDLY_TIMEOUT_MS: '2500',
      CALENDLY_MAX_RETRIES: '0',
      CALENDLY_MAX_RETRY_DELAY_MS: '750',
    });
    expect(calendlyClientOptionsOf(config)).toEqual({ timeoutMs: 2_500, maxRetries: 0, maxRetryDelayMs: 750 });
  });

  it('refuses bad values, naming each variable and why', () => {
    let problems: ConfigError['problems'] = [];
    try {
      loadConfig(calendlySchema, {
        CALENDLY_TIMEOUT_MS: '50',
        CALENDLY_MAX_RETRIES: 'lots',
        CALENDLY_MAX_RETRY_DELAY_MS: '-1',
      });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems).toEqual([
      { variable: 'CALENDLY_TIMEOUT_MS', problem: 'must be at least 100' },
      { variable: 'CALENDLY_MAX_RETRIES', problem: 'must be a whole number' },
      { variable: 'CALENDLY_MAX_RETRY_DELAY_MS', problem: 'must be at least 0' },
    ]);
  });
});
