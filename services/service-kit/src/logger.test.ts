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
});
