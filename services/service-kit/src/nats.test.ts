import { connect, Empty, ErrorCode, NatsError, type NatsConnection } from 'nats';
import { ensureConsumer, ensureStream, eraseMatchingMessages, spareAnsweredRequestsTheirCancelError } from './nats';
import { natsNames, userSubjectToken } from './nats-names';
import { testNatsUrl, testSubjectPrefix } from './testing/infra';

let nc: NatsConnection;
const prefix = testSubjectPrefix('kit');
const names = natsNames(prefix);

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
});

afterAll(async () => {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.delete(names.eventsStream).catch(() => undefined);
  await nc.close();
});

describe('ensureStream and ensureConsumer', () => {
  it('declare idempotently and bring settings up to date', async () => {
    const jsm = await nc.jetstreamManager();
    const config = { name: names.eventsStream, subjects: [names.eventsSubjects], duplicate_window: 120e9 };
    await ensureStream(jsm, config);
    await ensureStream(jsm, config);
    await ensureStream(jsm, { ...config, max_msgs: 1000 });
    const info = await jsm.streams.info(names.eventsStream);
    expect(info.config.max_msgs).toBe(1000);
    expect(info.config.duplicate_window).toBe(120e9);

    await ensureConsumer(jsm, names.eventsStream, { durable_name: 'meetings', max_deliver: 5 });
    await ensureConsumer(jsm, names.eventsStream, { durable_name: 'meetings', max_deliver: 7 });
    const consumers = await jsm.consumers.list(names.eventsStream).next();
    expect(consumers.map((c) => [c.name, c.config.max_deliver])).toEqual([['meetings', 7]]);
  });

  it('leaves an existing stream alone when asked only to create it', async () => {
    const jsm = await nc.jetstreamManager();
    const config = { name: names.backfillStream, subjects: [names.backfillSubject], max_msgs: 10 };
    expect(await ensureStream(jsm, config, { onlyCreate: true })).toBe('created');
    expect(await ensureStream(jsm, { ...config, max_msgs: 99 }, { onlyCreate: true })).toBe('existed');
    expect((await jsm.streams.info(names.backfillStream)).config.max_msgs).toBe(10);
    expect(await ensureStream(jsm, { ...config, max_msgs: 99 })).toBe('updated');
    expect((await jsm.streams.info(names.backfillStream)).config.max_msgs).toBe(99);
    await jsm.streams.delete(names.backfillStream);
  });

  it('gives every prefix its own streams and subjects', () => {
    const a = natsNames('alpha');
    const b = natsNames('beta');
    expect(a.eventsStream).not.toBe(b.eventsStream);
    expect(a.eventSubject('invitee.created')).toBe('alpha.calendly.invitee.created');
    expect(a.eventsSubjects).toBe('alpha.calendly.>');
  });

  it('gives every user one subject token of the change feed, one to one, whatever their id holds', () => {
    const names = natsNames('alpha');
    expect(names.meetingsChangedSubject('user-42')).toBe('alpha.meetings.changed.user-42');
    const ids = ['a.b', 'a%2Eb', 'a*', 'a>', 'a b', 'ü', 'a%b', 'a_b'];
    const tokens = ids.map(userSubjectToken);
    expect(new Set(tokens).size).toBe(ids.length);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_%-]+$/);
    expect(() => userSubjectToken('')).toThrow();
  });
});

describe('eraseMatchingMessages', () => {
  it('erases exactly the matching messages of a stream, over several batches, and nothing else', async () => {
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    const stream = names.deadLetterStream;
    await jsm.streams.add({ name: stream, subjects: [names.deadLetterSubjects] });
    try {
      // More than one fetch's worth, interleaved; one gap where a message was already deleted.
      for (let n = 0; n < 1_203; n++)
        await js.publish(names.deadLetterSubject(`x.${n % 3}`), Buffer.from(n % 3 === 0 ? `alice ${n}` : `bob ${n}`));
      await jsm.streams.deleteMessage(stream, 2);
      const alices = (data: Uint8Array) => Buffer.from(data).toString().startsWith('alice');
      expect(await eraseMatchingMessages(js, jsm, stream, (_subject, data) => alices(data))).toBe(401);

      const info = await jsm.streams.info(stream);
      expect(info.state.messages).toBe(1_203 - 1 - 401);
      let seen = 0;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const message = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
        if (!message) continue;
        seen++;
        expect(alices(message.data)).toBe(false);
      }
      expect(seen).toBe(801);
      expect(await eraseMatchingMessages(js, jsm, stream, (_subject, data) => alices(data))).toBe(0);
    } finally {
      await jsm.streams.delete(stream);
    }
  });

  it('has nothing to erase in a stream that does not exist', async () => {
    const jsm = await nc.jetstreamManager();
    expect(await eraseMatchingMessages(nc.jetstream(), jsm, `${names.eventsStream}_NONE`, () => true)).toBe(0);
  });
});

describe('spareAnsweredRequestsTheirCancelError', () => {
  it('lets an answered request build no error, and still fails one that finds no responder or times out', async () => {
    expect(spareAnsweredRequestsTheirCancelError()).toBe(true);
    const echo = nc.subscribe(`${prefix}.echo`, { callback: (_error, message) => message.respond(message.data) });
    const silent = nc.subscribe(`${prefix}.silent`);
    const built = jest.spyOn(NatsError, 'errorForCode');
    try {
      const cancelErrorsBuilt = () => built.mock.calls.filter(([code]) => code === ErrorCode.Cancelled).length;
      const reply = await nc.request(`${prefix}.echo`, Buffer.from('ping'), { timeout: 5_000 });
      expect(Buffer.from(reply.data).toString()).toBe('ping');
      expect(cancelErrorsBuilt()).toBe(0);

      await expect(nc.request(`${prefix}.nobody`, Empty, { timeout: 5_000 })).rejects.toMatchObject({
        code: ErrorCode.NoResponders,
      });
      await expect(nc.request(`${prefix}.silent`, Empty, { timeout: 200 })).rejects.toMatchObject({
        code: ErrorCode.Timeout,
      });
      // A request cancelled before any answer is still rejected with an error of its own.
      expect(cancelErrorsBuilt()).toBeGreaterThan(0);
    } finally {
      built.mockRestore();
      echo.unsubscribe();
      silent.unsubscribe();
    }
  });
});
