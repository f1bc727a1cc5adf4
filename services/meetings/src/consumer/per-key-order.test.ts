import { createPerKeyOrder } from './per-key-order';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

it('runs one key in call order and other keys at once, whether a task succeeds or fails', async () => {
  const order = createPerKeyOrder();
  const log: string[] = [];
  const first = gate();
  const a1 = order.run('alice', async () => {
    log.push('a1 start');
    await first.opened;
    log.push('a1 end');
    throw new Error('a1 failed');
  });
  const a2 = order.run('alice', async () => {
    log.push('a2');
    return 2;
  });
  const b1 = order.run('bob', async () => {
    log.push('b1');
    return 'b';
  });
  // Bob's task ran while Alice's first still waits; Alice's second waits behind it.
  await expect(b1).resolves.toBe('b');
  expect(log).toEqual(['a1 start', 'b1']);
  first.open();
  await expect(a1).rejects.toThrow('a1 failed');
  await expect(a2).resolves.toBe(2);
  expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
  await Promise.resolve();
  expect(order.pendingKeys).toBe(0);
});
