import { createConnectCookie } from './connect-cookie';

describe('the connect cookie', () => {
  const now = new Date('2026-11-30T12:00:00Z');
  const expiresAt = new Date('2026-11-30T12:10:00Z');

  it('is __Host-, Secure, HttpOnly and SameSite=Lax over HTTPS, and lives as long as the state', () => {
    const cookie = createConnectCookie('https://calsync.example.com');
    expect(cookie.issue('state-1', expiresAt, now)).toMatch(
      /^__Host-calsync-connect=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/,
    );
    expect(cookie.clear()).toBe('__Host-calsync-connect=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure');
  });

  it('matches only the state it was issued for, and never holds the state itself', () => {
    const cookie = createConnectCookie('http://127.0.0.1:8080');
    const value = /^calsync-connect=([^;]+)/.exec(cookie.issue('state-1', expiresAt, now))![1]!;
    expect(value).not.toContain('state-1');
    expect(cookie.matches(value, 'state-1')).toBe(true);
    expect(cookie.matches(value, 'state-2')).toBe(false);
    expect(cookie.matches(undefined, 'state-1')).toBe(false);
    expect(cookie.matches('short', 'state-1')).toBe(false);
  });
});
