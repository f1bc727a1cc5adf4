import { Metadata, status } from '@grpc/grpc-js';
import { GrpcError } from './errors';
import { captureLogger } from './testing/log-capture';

describe('logger', () => {
  it('redacts tokens, signing keys and secret headers wherever they appear', () => {
    const { log, lines } = captureLogger();
    log.info(
      {
        token: 'pat-secret-1',
        access_token: 'at-secret-2',
        connection: { refreshToken: 'rt-secret-3' },
        req: { headers: { authorization: 'Bearer jwt-secret-4', 'calendly-webhook-signature': 't=1,v1=sig-secret-5' } },
        subscription: { signing_key: 'sk-secret-6' },
        userId: 'user-7',
      },
      'something happened',
    );
    const line = lines.join('\n');
    for (const secret of [
      'pat-secret-1',
      'at-secret-2',
      'rt-secret-3',
      'jwt-secret-4',
      'sig-secret-5',
      'sk-secret-6',
    ]) {
      expect(line).not.toContain(secret);
    }
    expect(line).toContain('user-7');
    expect(line).toContain('[redacted]');
  });

  it("redacts secrets in child bindings, in lists, and in what an error carries, never changing the caller's objects", () => {
    const { log, lines } = captureLogger();
    const fields = {
      hooks: [{ hookId: 'h1', signingKey: 'sk-secret-8' }],
      deep: { a: { b: { token: 'out-of-reach-9' } } },
    };
    const failure = Object.assign(new Error('upstream 500'), {
      status: 500,
      request: { authorization: 'Bearer jwt-secret-10' },
    });
    log.child({ token: 'child-secret-11', requestId: 'r1' }).error({ ...fields, err: failure }, 'failed');
    const line = lines.join('\n');
    for (const secret of ['sk-secret-8', 'jwt-secret-10', 'child-secret-11']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({ requestId: 'r1', hooks: [{ hookId: 'h1', signingKey: '[redacted]' }] });
    // Three levels down, as pino's `*.*.field` paths did; a fourth is not searched.
    expect(line).toContain('out-of-reach-9');
    expect(fields.hooks[0]!.signingKey).toBe('sk-secret-8');
    expect(failure.request.authorization).toBe('Bearer jwt-secret-10');
  });

  it('logs an expected refusal as one line without a stack trace', () => {
    const { log, lines } = captureLogger();
    // What a grpc-js client throws when the server refuses: an Error with code, details, metadata.
    const refused = Object.assign(new Error('16 UNAUTHENTICATED: the token was refused'), {
      code: status.UNAUTHENTICATED,
      details: 'the token was refused',
      metadata: new Metadata(),
    });
    log.warn({ err: refused }, 'connect refused');
    log.info({ err: new GrpcError(status.NOT_FOUND, 'no such meeting') }, 'lookup refused');
    log.info({ err: Object.assign(new Error('Calendly answered 401'), { status: 401 }) }, 'calendly refused');

    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('stack');
    expect(JSON.parse(lines[0]!).err).toEqual({
      type: 'Error',
      message: '16 UNAUTHENTICATED: the token was refused',
      code: 'UNAUTHENTICATED',
    });
    expect(JSON.parse(lines[1]!).err).toEqual({ type: 'GrpcError', message: 'no such meeting', code: 'NOT_FOUND' });
    expect(JSON.parse(lines[2]!).err).toEqual({ type: 'Error', message: 'Calendly answered 401', status: 401 });
  });

  it('keeps the stack and cause of what nobody expected', () => {
    const { log, lines } = captureLogger();
    const broken = Object.assign(new Error('13 INTERNAL: internal error'), { code: status.INTERNAL });
    log.error({ err: new Error('request failed', { cause: broken }) }, 'request failed');
    log.error({ err: Object.assign(new Error('upstream 502'), { status: 502 }) }, 'upstream failed');
    const [first, second] = lines.map((line) => JSON.parse(line).err);
    expect(first.stack).toContain('logger.test');
    expect(first.message).toBe('request failed: 13 INTERNAL: internal error');
    expect(second.stack).toContain('upstream 502');
  });
});
