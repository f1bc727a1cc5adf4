// Reconcile at scale: how long subscription's reconcile takes to walk every user against
// Calendly (the simulator), what it costs each user in Calendly requests, and the peak request
// rate it puts on Calendly, with every service as its own process.
//
//   node scripts/bench/reconcile/index.mjs [--users 100000] [--passes 2]
//
// The users are seeded as calsync would hold them after connecting: a simulated Calendly user
// each, with a personal access token (identity's `connections`, sealed as identity seals it) and
// a per-user webhook subscription created at the simulator through Calendly's API with a signing
// key of its own (subscription's `webhooks`, sealed as subscription seals it), synced by that
// webhook (subscription's `sync_modes`). Seeding writes the tables directly, because connecting
// 100,000 users through the gateway would take the better part of an hour; the reconcile passes then run through the real gRPC call (Reconcile, as the
// operator), exactly as the timer runs them.
//
// Each pass prints its time, users per second, Calendly requests per user, the peak requests per
// second Calendly saw, 429s, and how the pass compares with RECONCILE_INTERVAL_SECONDS (300 s by
// default) and with a user's budget (500 requests per minute on paid plans, 50 on Free).
//
// Uses DATABASE_URL / NATS_URL when set, else an embedded Postgres and a local nats-server.
// Needs a build first: npm run build
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import systemLib from '../../lib/system.cjs';
import bench from '../../lib/bench.cjs';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    passes: { type: 'string', default: '2' },
    // Writes subscription's and identity's CPU profiles (.cpuprofile) into this directory on exit.
    'cpu-prof': { type: 'string' },
  },
});
const userCount = Number(values.users);
const passes = Number(values.passes);
for (const [name, value] of [
  ['--users', userCount],
  ['--passes', passes],
])
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number`);

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const requireFromRepo = createRequire(join(rootDir, 'package.json'));
const kit = requireFromRepo('@calsync/service-kit');
const { subscriptionV1 } = requireFromRepo('@calsync/proto');
const { subscribedEvents } = requireFromRepo('@calsync/calendly-client');
const say = (line) => process.stdout.write(`${line}\n`);
const intervalSeconds = 300; // subscription's RECONCILE_INTERVAL_SECONDS default
const paidBudgetPerMinute = 500;
const seedBatch = 2_000;

async function main() {
  bench.printBenchHeader(rootDir);
  const cleanup = bench.createCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'calsync-bench-reconcile-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const { databaseUrl, natsUrl } = await bench.benchInfra({
      dir,
      cleanup,
      databasePrefix: 'calsync_bench_reconcile',
    });

    const system = await systemLib.startSystem({
      rootDir,
      databaseUrl,
      natsUrl,
      natsSubjectPrefix: `benchrec${Date.now().toString(36)}`,
      logLevel: 'info',
      // Only the bench's own passes run (the timer would start one in the middle of seeding).
      extraEnv: { subscription: { RECONCILE_INTERVAL_SECONDS: '0' } },
      nodeArgs: values['cpu-prof']
        ? Object.fromEntries(
            ['subscription', 'identity'].map((service) => [
              service,
              ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`, `--cpu-prof-name=${service}.cpuprofile`],
            ]),
          )
        : {},
    });
    cleanup.add(system.stop);
    const { simulator, gateway } = system.urls;
    const sealingKeys = new Map(
      system.secrets.sealingKeys.split(',').map((entry) => {
        const at = entry.indexOf('=');
        return [entry.slice(0, at), Buffer.from(entry.slice(at + 1), 'base64')];
      }),
    );
    const sealer = kit.createSealer({ keys: sealingKeys, activeKeyId: [...sealingKeys.keys()][0] });
    const db = new (requireFromRepo('pg').Pool)({ connectionString: databaseUrl, max: 4 });
    cleanup.add(() => db.end());

    say(`seeding ${userCount} connected users with a webhook each...`);
    const seedStarted = Date.now();
    let pending = [];
    const flush = async () => {
      const rows = pending;
      pending = [];
      if (rows.length === 0) return;
      const column = (pick) => rows.map(pick);
      await db.query(
        `INSERT INTO identity.connections (user_id, kind, calendly_user_uri, calendly_organization_uri, access_token_sealed)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])`,
        [
          column((row) => row.userId),
          column(() => 'personal_token'),
          column((row) => row.calendlyUserUri),
          column((row) => row.organizationUri),
          column((row) => sealer.seal(row.accessToken, `identity/access_token/${row.userId}`)),
        ],
      );
      await db.query(
        `INSERT INTO subscription.webhooks (hook_id, user_id, calendly_user_uri, calendly_organization_uri,
           calendly_subscription_uri, callback_url, events, state, signing_key_source, signing_key_sealed, last_verified_at)
         SELECT h, u, cu, o, s, c, $7::text[], 'active', 'subscription', k, now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $8::text[])
           AS t(h, u, cu, o, s, c, k)`,
        [
          column((row) => row.hookId),
          column((row) => row.userId),
          column((row) => row.calendlyUserUri),
          column((row) => row.organizationUri),
          column((row) => row.subscriptionUri),
          column((row) => row.callbackUrl),
          [...subscribedEvents],
          column((row) => sealer.seal(row.signingKey, `webhook:${row.hookId}`)),
        ],
      );
      // Ensure records each user synced by their webhook.
      await db.query(
        `INSERT INTO subscription.sync_modes (user_id, calendly_user_uri, mode)
         SELECT u, cu, 'webhook' FROM unnest($1::text[], $2::text[]) AS t(u, cu)`,
        [column((row) => row.userId), column((row) => row.calendlyUserUri)],
      );
    };
    let next = 0;
    let seeded = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < userCount) {
          const i = next++;
          const user = await bench.json(`${simulator}/_sim/users`, {
            method: 'POST',
            body: { name: `Reconcile ${i}`, email: `reconcile${i}@example.test`, plan: 'standard' },
          });
          const hookId = randomBytes(24).toString('base64url');
          const signingKey = randomBytes(32).toString('base64url');
          const callbackUrl = `${gateway}/webhooks/calendly/${hookId}`;
          const { resource } = await bench.json(`${simulator}/webhook_subscriptions`, {
            method: 'POST',
            token: user.personal_access_token,
            body: {
              url: callbackUrl,
              events: subscribedEvents,
              organization: user.organization,
              user: user.uri,
              scope: 'user',
              signing_key: signingKey,
            },
          });
          pending.push({
            userId: `reconcile-user-${i}`,
            calendlyUserUri: user.uri,
            organizationUri: user.organization,
            accessToken: user.personal_access_token,
            hookId,
            signingKey,
            callbackUrl,
            subscriptionUri: resource.uri,
          });
          if (pending.length >= seedBatch) await flush();
          seeded += 1;
          if (seeded % 10_000 === 0) say(`  ${seeded} users (${((Date.now() - seedStarted) / 1000).toFixed(0)} s)`);
        }
      }),
    );
    await flush();
    say(`  seeded in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);

    const operator = await system.grpcSecurity(kit.grpcIdentities.operator);
    const client = kit.createGrpcClient(subscriptionV1.SubscriptionServiceService, system.urls.subscription, {
      security: operator,
      defaultTimeoutMs: 3_600_000,
    });
    cleanup.add(() => client.close());
    const services = Object.entries(system.processes).filter(([name]) => name !== 'calendly-sim');
    const calendlyRequests = async () => (await bench.json(`${simulator}/_sim/api_requests`)).requests;

    for (let pass = 1; pass <= passes; pass++) {
      const cpuBefore = Object.fromEntries(
        services.map(([name, p]) => [name, bench.processUsage(p.child.pid).cpuSeconds]),
      );
      const before = await bench.json(`${simulator}/_sim/api_requests`);
      let peakPerSecond = 0;
      let last = before.requests;
      const sampler = setInterval(() => {
        void calendlyRequests().then(
          (now) => {
            peakPerSecond = Math.max(peakPerSecond, now - last);
            last = now;
          },
          () => {},
        );
      }, 1_000);
      const started = Date.now();
      const summary = await client.reconcile({ userId: '' });
      const seconds = (Date.now() - started) / 1000;
      clearInterval(sampler);
      const after = await bench.json(`${simulator}/_sim/api_requests`);
      const requests = after.requests - before.requests;
      const load = loadavg();
      say('');
      say(`pass ${pass}: Reconcile over every user`);
      say(
        `  users           ${summary.usersChecked} checked: ${summary.healthy} healthy, ${summary.recreated} recreated, ${summary.failed} failed`,
      );
      say(`  time            ${seconds.toFixed(1)} s, ${(summary.usersChecked / seconds).toFixed(0)} users/s`);
      say(
        `  interval        ${((seconds / intervalSeconds) * 100).toFixed(0)} % of RECONCILE_INTERVAL_SECONDS=${intervalSeconds} (${seconds <= intervalSeconds ? 'fits' : 'DOES NOT FIT'})`,
      );
      say(
        `  Calendly        ${(requests / Math.max(1, summary.usersChecked)).toFixed(2)} requests per user (budget ${paidBudgetPerMinute}/min paid, ${paidBudgetPerMinute / 10}/min Free), peak ${peakPerSecond}/s in all, ${after.rate_limited - before.rate_limited} answered 429`,
      );
      for (const [name, p] of services) {
        const cpu = bench.processUsage(p.child.pid).cpuSeconds - cpuBefore[name];
        say(
          `  ${name.padEnd(15)} ${((cpu * 1000) / Math.max(1, summary.usersChecked)).toFixed(3)} ms CPU per user, RSS ${bench.processUsage(p.child.pid).rssMb.toFixed(0)} MB`,
        );
      }
      say(`  load average    ${load.map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores`);
    }
  } finally {
    await cleanup.run();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
