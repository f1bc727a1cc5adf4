import { computeSignature, parseSignatureHeader, signatureHeaderFor, signatureMatches } from './signature';

const key = 'k'.repeat(43);
const body = Buffer.from('{"event":"invitee.created"}');
const hex = (value: string) => computeSignature(key, value, body).toString('hex');

describe('parseSignatureHeader', () => {
  it('reads t and one or several v1 values', () => {
    const one = parseSignatureHeader(`t=1700000000,v1=${hex('1700000000')}`);
    expect(one).toMatchObject({ timestampText: '1700000000', timestamp: 1_700_000_000 });
    expect(one!.signatures).toHaveLength(1);
    const two = parseSignatureHeader(`t=1700000000,v1=${'a'.repeat(64)},v1=${'b'.repeat(64)}`);
    expect(two!.signatures.map((s) => s.toString('hex'))).toEqual(['a'.repeat(64), 'b'.repeat(64)]);
  });

  it.each([
    ['empty', ''],
    ['no v1', 't=1700000000'],
    ['no t', `v1=${'a'.repeat(64)}`],
    ['t not first', `v1=${'a'.repeat(64)},t=1700000000`],
    ['two t', `t=1,t=2,v1=${'a'.repeat(64)}`],
    ['spaces', `t=1700000000, v1=${'a'.repeat(64)}`],
    ['upper-case hex', `t=1700000000,v1=${'A'.repeat(64)}`],
    ['short hex', `t=1700000000,v1=${'a'.repeat(63)}`],
    ['unknown scheme', `t=1700000000,v0=${'a'.repeat(64)}`],
    ['non-numeric t', `t=17e8,v1=${'a'.repeat(64)}`],
    ['negative t', `t=-5,v1=${'a'.repeat(64)}`],
    ['leading zero t', `t=0170000000,v1=${'a'.repeat(64)}`],
    ['trailing comma', `t=1700000000,v1=${'a'.repeat(64)},`],
    ['too many v1', `t=1700000000${`,v1=${'a'.repeat(64)}`.repeat(9)}`],
  ])('refuses %s', (_name, header) => {
    expect(parseSignatureHeader(header)).toBeUndefined();
  });
});

describe('signatureMatches', () => {
  it('accepts the right signature among others and refuses when none is right', () => {
    const right = parseSignatureHeader(`t=1700000000,v1=${'0'.repeat(64)},v1=${hex('1700000000')}`)!;
    expect(signatureMatches(key, right, body)).toBe(true);
    const wrong = parseSignatureHeader(`t=1700000000,v1=${'0'.repeat(64)},v1=${hex('1700000001')}`)!;
    expect(signatureMatches(key, wrong, body)).toBe(false);
  });

  it('covers the raw bytes: a re-serialised body no longer matches', () => {
    const parsed = parseSignatureHeader(signatureHeaderFor(key, 1_700_000_000, body))!;
    expect(signatureMatches(key, parsed, body)).toBe(true);
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 1));
    expect(signatureMatches(key, parsed, reserialised)).toBe(false);
    expect(signatureMatches('another key', parsed, body)).toBe(false);
  });
});
