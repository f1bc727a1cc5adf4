import { AsyncLocalStorage } from 'node:async_hooks';
import { context, createContextKey, ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';
import { createPublishBatch } from './message-tracing';

/** The smallest context manager (what the SDK registers when tracing is on): one AsyncLocalStorage. */
function asyncLocalContextManager(): ContextManager {
  const storage = new AsyncLocalStorage<Context>();
  const manager: ContextManager = {
    active: () => storage.getStore() ?? ROOT_CONTEXT,
    with: (ctx, fn, thisArg, ...args) => storage.run(ctx, () => fn.call(thisArg, ...args)),
    bind: (_ctx, target) => target,
    enable: () => manager,
    disable: () => manager,
  };
  return manager;
}

describe('createPublishBatch', () => {
  it('starts the work of one turn together, after that turn, in order, each with its own result', async () => {
    const inBatch = createPublishBatch();
    const started: string[] = [];
    const results = ['a', 'b', 'c'].map((name) =>
      inBatch(async () => {
        started.push(name);
        return name.toUpperCase();
      }),
    );
    expect(started).toEqual([]);
    await expect(Promise.all(results)).resolves.toEqual(['A', 'B', 'C']);
    expect(started).toEqual(['a', 'b', 'c']);
  });

  it('rejects only the work that failed, thrown or rejected, and still starts the rest', async () => {
    const inBatch = createPublishBatch();
    const thrown = inBatch(() => {
      throw new Error('thrown');
    });
    const rejected = inBatch(() => Promise.reject(new Error('rejected')));
    const fine = inBatch(async () => 'fine');
    await expect(thrown).rejects.toThrow('thrown');
    await expect(rejected).rejects.toThrow('rejected');
    await expect(fine).resolves.toBe('fine');
  });

  it('keeps going in later turns', async () => {
    const inBatch = createPublishBatch();
    await expect(inBatch(async () => 1)).resolves.toBe(1);
    await expect(inBatch(async () => 2)).resolves.toBe(2);
  });

  it("runs each work in its caller's trace context, not the first caller's", async () => {
    context.setGlobalContextManager(asyncLocalContextManager());
    try {
      const key = createContextKey('caller');
      const inBatch = createPublishBatch();
      const seen = await Promise.all(
        ['first', 'second'].map((name) =>
          context.with(ROOT_CONTEXT.setValue(key, name), () => inBatch(async () => context.active().getValue(key))),
        ),
      );
      expect(seen).toEqual(['first', 'second']);
    } finally {
      context.disable();
    }
  });
});
