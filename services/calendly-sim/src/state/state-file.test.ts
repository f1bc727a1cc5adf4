import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectWithOAuth,
  devClient,
  eventually,
  slot,
  startHarness,
  startReceiver,
  type SimHarness,
} from '../../test/harness';

const dir = mkdtempSync(join(tmpdir(), 'sim-state-'));
const stateFile = join(dir, 'simulator.state');
const running: SimHarness[] = [];
let receiver: Awaited<ReturnType<typeof startReceiver>>;

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  for (const harness of running) await harness.stop();
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(port = 0): Promise<SimHarness> {
  const harness = await startHarness(undefined, { port, stateFile });
  running.push(harness);
  return harness;
}

test('users, grants, webhook subscriptions and bookings outlive a restart, and deliveries go on', async () => {
  const first = await start();
  const user = await first.createUser({ name: 'Rita Restart', email: 'rita@example.test' });
  const tokens = await connectWithOAuth(first, user);
  const hook = await first.call<{ resource: { uri: string } }>('POST', '/webhook_subscriptions', {
    token: tokens.access_token,
    body: {
      url: `${receiver.url}/rita`,
      events: ['invitee.created'],
      organization: user.organization,
      scope: 'user',
      user: user.uri,
    },
  });
  expect(hook.status).toBe(201);
  await first.control('POST', '/_sim/bookings', {
    user: user.uri,
    invitee: { name: 'Ann', email: 'ann@example.test' },
    ...slot(24),
  });
  await eventually(() => expect(receiver.at('/rita')).toHaveLength(1));
  await first.stop();

  const second = await start(first.sim.port);
  const me = await second.call<{ resource: { uri: string } }>('GET', '/users/me', { token: tokens.access_token });
  expect(me.status).toBe(200);
  expect(me.body.resource.uri).toBe(user.uri);
  const byPat = await second.call('GET', '/users/me', { token: user.personal_access_token });
  expect(byPat.status).toBe(200);
  const refreshed = await second.call('POST', '/oauth/token', {
    basic: devClient,
    form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
  });
  expect(refreshed.status).toBe(200);
  const events = await second.call<{ collection: unknown[] }>(
    'GET',
    `/scheduled_events?user=${encodeURIComponent(user.uri)}`,
    { token: user.personal_access_token },
  );
  expect(events.body.collection).toHaveLength(1);
  const hooks = await second.call<{ collection: { uri: string }[] }>(
    'GET',
    `/webhook_subscriptions?organization=${encodeURIComponent(user.organization)}&scope=user&user=${encodeURIComponent(user.uri)}`,
    { token: user.personal_access_token },
  );
  expect(hooks.body.collection.map((h) => h.uri)).toEqual([hook.body.resource.uri]);
  // The restored subscription still holds its callback URL.
  const again = await second.call('POST', '/webhook_subscriptions', {
    token: user.personal_access_token,
    body: {
      url: `${receiver.url}/rita`,
      events: ['invitee.created'],
      organization: user.organization,
      scope: 'user',
      user: user.uri,
    },
  });
  expect(again.status).toBe(409);

  // The restored subscription still belongs to the restored user: a new booking is delivered.
  await second.control('POST', '/_sim/bookings', {
    user: user.uri,
    invitee: { name: 'Bo', email: 'bo@example.test' },
    ...slot(25),
  });
  await eventually(() => expect(receiver.at('/rita')).toHaveLength(2));
  await second.stop();
});

test('refuses a state file saved by a simulator at another address, naming both', async () => {
  await expect(start(0)).rejects.toThrow(/holds a simulator at http:\/\/127\.0\.0\.1:\d+, but this one is at/);
});
