import { grpcTarget } from './grpc-client';

describe('grpcTarget', () => {
  it('keeps one address as it is', () => {
    expect(grpcTarget('subscription:50052')).toBe('subscription:50052');
    expect(grpcTarget('dns:///subscription-headless:50052')).toBe('dns:///subscription-headless:50052');
  });

  it('turns a list of ip:port into one target whose calls are spread over all of them', () => {
    expect(grpcTarget('127.0.0.1:5001, 127.0.0.1:5002')).toBe('ipv4:127.0.0.1:5001,127.0.0.1:5002');
    expect(grpcTarget('[::1]:5001,[::1]:5002')).toBe('ipv6:[::1]:5001,[::1]:5002');
  });

  it('refuses a list naming hosts, pointing at one DNS name instead', () => {
    expect(() => grpcTarget('10.0.0.1:5001,subscription-1:5001')).toThrow(
      /"subscription-1:5001" .* is not ip:port; for host names give one DNS name/,
    );
  });
});
