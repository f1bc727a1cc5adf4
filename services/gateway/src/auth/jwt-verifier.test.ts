import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import { AuthError, bearerToken, createJwtVerifier } from './jwt-verifier';

const secret = 'a-test-secret-that-is-long-enough-for-hs256';
const hs256 = (claims: Record<string, unknown>, key = secret, alg = 'HS256') =>
  new SignJWT(claims)
    .setProtectedHeader({ alg })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(key));

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AuthError) return error;
    throw error;
  }
  throw new Error('the token was accepted');
}

describe('JWT verification with an HS256 secret', () => {
  const verify = createJwtVerifier({ secret, maxTokenAgeSeconds: 3600 });
  const now = () => Math.floor(Date.now() / 1000);
  const signed = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));

  it('refuses a token without "exp", however fresh', async () => {
    const error = await refusal(verify(await signed({ sub: 'user-1', iat: now() })));
    expect(error).toMatchObject({ kind: 'invalid', message: 'the token has no "exp" claim' });
  });

  it('refuses a token without "iat": its age could not be bounded', async () => {
    const error = await refusal(verify(await signed({ sub: 'user-1', exp: now() + 60 })));
    expect(error).toMatchObject({ kind: 'invalid', message: 'the token has no "iat" claim' });
  });

  it('refuses a token issued longer ago than the maximum age, even when "exp" is far away', async () => {
    const error = await refusal(verify(await signed({ sub: 'user-1', iat: now() - 3700, exp: now() + 86_400 })));
    expect(error).toMatchObject({ kind: 'invalid', message: 'the token has expired' });
  });

  it('refuses a token issued in the future', async () => {
    const error = await refusal(verify(await signed({ sub: 'user-1', iat: now() + 600, exp: now() + 1200 })));
    expect(error.kind).toBe('invalid');
  });

  it('honours "nbf": refused before it, accepted after it', async () => {
    const early = await refusal(
      verify(await signed({ sub: 'user-1', iat: now(), nbf: now() + 600, exp: now() + 900 })),
    );
    expect(early).toMatchObject({ kind: 'invalid', message: 'the token is not valid yet' });
    await expect(verify(await signed({ sub: 'user-1', iat: now(), nbf: now() - 1, exp: now() + 60 }))).resolves.toEqual(
      {
        userId: 'user-1',
      },
    );
  });

  it('accepts a valid token and names its sub as the user', async () => {
    await expect(verify(await hs256({ sub: 'user-1' }))).resolves.toEqual({ userId: 'user-1' });
  });

  it('refuses a token signed with another secret', async () => {
    const error = await refusal(verify(await hs256({ sub: 'user-1' }, 'another-secret-that-is-long-enough-too')));
    expect(error.kind).toBe('invalid');
  });

  it('refuses an expired token', async () => {
    const token = await new SignJWT({ sub: 'user-1' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(secret));
    const error = await refusal(verify(token));
    expect(error).toMatchObject({ kind: 'invalid', message: 'the token has expired' });
  });

  it('refuses another HMAC algorithm, an unsigned token and a token without sub', async () => {
    expect((await refusal(verify(await hs256({ sub: 'user-1' }, secret, 'HS512')))).kind).toBe('invalid');
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"user-1"}').toString('base64url')}.`;
    expect((await refusal(verify(unsigned))).kind).toBe('invalid');
    expect((await refusal(verify(await hs256({})))).message).toMatch(/sub/);
    expect((await refusal(verify(await hs256({ sub: '' })))).kind).toBe('invalid');
  });

  it('refuses garbage', async () => {
    expect((await refusal(verify('not.a.jwt'))).kind).toBe('invalid');
  });

  it('checks issuer and audience when configured', async () => {
    const strict = createJwtVerifier({
      secret,
      maxTokenAgeSeconds: 3600,
      issuer: 'https://platform.example',
      audience: ['calsync'],
    });
    const good = await hs256({ sub: 'u', iss: 'https://platform.example', aud: 'calsync' });
    await expect(strict(good)).resolves.toEqual({ userId: 'u' });
    const wrongIssuer = await refusal(strict(await hs256({ sub: 'u', iss: 'https://evil.example', aud: 'calsync' })));
    expect(wrongIssuer.message).toMatch(/"iss"/);
    const wrongAudience = await refusal(
      strict(await hs256({ sub: 'u', iss: 'https://platform.example', aud: 'other' })),
    );
    expect(wrongAudience.message).toMatch(/"aud"/);
    expect((await refusal(strict(await hs256({ sub: 'u' })))).kind).toBe('invalid');
  });
});

describe('JWT verification with a JWKS URL', () => {
  let server: Server;
  let jwksUrl: string;
  let privateKey: KeyLike;
  let publicJwk: JWK;
  let requests = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    server = createServer((_req, res) => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const rs256 = (claims: Record<string, unknown>, kid = 'k1') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

  it('accepts a token signed by a published key, fetching the key set once', async () => {
    const verify = createJwtVerifier({ jwksUrl, maxTokenAgeSeconds: 3600 });
    const before = requests;
    await expect(verify(await rs256({ sub: 'user-9' }))).resolves.toEqual({ userId: 'user-9' });
    await expect(verify(await rs256({ sub: 'user-9' }))).resolves.toEqual({ userId: 'user-9' });
    expect(requests - before).toBe(1);
  });

  it('refuses an HS256 token even when its secret is the public key material', async () => {
    const verify = createJwtVerifier({ jwksUrl, maxTokenAgeSeconds: 3600 });
    const forged = await new SignJWT({ sub: 'user-9' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
    expect((await refusal(verify(forged))).kind).toBe('invalid');
  });

  it('refuses a token signed by an unpublished key', async () => {
    const other = await generateKeyPair('RS256');
    const token = await new SignJWT({ sub: 'user-9' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(other.privateKey);
    expect((await refusal(createJwtVerifier({ jwksUrl, maxTokenAgeSeconds: 3600 })(token))).kind).toBe('invalid');
  });

  it('answers unavailable, not invalid, when the key set cannot be fetched', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const verify = createJwtVerifier({ jwksUrl: `http://127.0.0.1:${port}/jwks.json`, maxTokenAgeSeconds: 3600 });
    expect((await refusal(verify(await rs256({ sub: 'user-9' })))).kind).toBe('unavailable');
  });
});

describe('bearerToken', () => {
  it('takes the token of a Bearer header, any case of the scheme', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc.def.ghi')).toBe('abc.def.ghi');
  });

  it('says missing without a header and invalid for another scheme', () => {
    expect(() => bearerToken(undefined)).toThrow(expect.objectContaining({ kind: 'missing' }));
    expect(() => bearerToken('Basic dXNlcjpwYXNz')).toThrow(expect.objectContaining({ kind: 'invalid' }));
    expect(() => bearerToken('Bearer ')).toThrow(expect.objectContaining({ kind: 'invalid' }));
  });
});
