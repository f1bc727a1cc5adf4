import { connect, type NatsConnection } from 'nats';
import { ensureConsumer, ensureStream } from './nats';
import { natsNames, userSubjectToken } from './nats-names';
import { testNatsUrl, testSubjectPrefix } from './testing/infra';

let nc: NatsConnection;
const names = natsNames(testSubjectPrefix('kit'));

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
