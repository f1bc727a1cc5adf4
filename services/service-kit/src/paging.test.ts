import { pageSizeOf } from './paging';

const bounds = { defaultSize: 20, maxSize: 100 };
const invalid = (message: string) => new RangeError(message);

it('takes the default for 0 or nothing, and any whole number from 1 to the bound', () => {
  expect(pageSizeOf(undefined, bounds, invalid)).toBe(20);
  expect(pageSizeOf(0, bounds, invalid)).toBe(20);
  expect(pageSizeOf(1, bounds, invalid)).toBe(1);
  expect(pageSizeOf(100, bounds, invalid)).toBe(100);
});

it.each([[-1], [101], [2.5], [Number.NaN]])('refuses %p with the caller’s own error', (asked) => {
  expect(() => pageSizeOf(asked, bounds, invalid)).toThrow(new RangeError('page_size must be between 1 and 100'));
});
