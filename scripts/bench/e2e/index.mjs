// Measures calsync's freshness on its change feed: from the moment the Calendly simulator starts
// a delivery to the moment the `MeetingChanged` event for that booking reaches a subscriber of
// `<prefix>.meetings.changed.>`, with every service running as its own process (the same
// processes `npm run dev` starts). For each rate, bookings arrive at a steady pace spread over
// every connected user; nothing polls, so the figures carry no polling load or interval.
//
//   node scripts/bench/e2e/index.mjs [--users 1000] [--rates 50,200,500] [--seconds 20] [--cpu-prof DIR]
//        [--consumer-concurrency 4] [--warmup-seconds 5] [--data-dir DIR]
//
// Per rate it prints p50/p90/p99/max (and p50/p99 of each leg: to the gateway's 2xx, to meetings
// recording the change, to the subscriber), the stalls (quarter-seconds in which the median booking
// took over 100 ms: a tail of stalls is not a tail of slow bookings), the rate reached, the load average, each service's CPU per
// booking and RSS, how busy the machine's CPU and each service were, and what broke first if
// anything did: the simulator falling behind the asked rate, deliveries the gateway refused or
// timed out (Calendly would retry them), the feed falling behind (changes still arriving more
// than a second after the last booking), or changes that never reached the feed within a minute.
//
// Before the rates it waits until every user is live (their imports on connect done), then books
// for --warmup-seconds at the highest rate asked up to 200/s, unmeasured, so no rate pays for the
// JIT or for cold connections and caches.
//
// --consumer-concurrency sets meetings' CONSUMER_CONCURRENCY (its default, 4, unless given).
// --cpu-prof DIR writes a V8 CPU profile of each calsync service (identity, subscription,
// meetings, gateway) into DIR when it stops; open them in Chrome DevTools or speedscope.
//
// --data-dir DIR is where the embedded Postgres and nats-server keep their data (default: the
// system's temporary folder). On one machine they share one disk, which no deployment does: there
// JetStream's writes back up Postgres' commit fsyncs (on the 2-core VM these figures come from,
// single fdatasyncs of 15-83 ms under load, and commits stalled for a second or more). A memory
// file system (--data-dir /dev/shm) takes that disk out of the measurement; report which was used.
//
// Uses DATABASE_URL / NATS_URL when set, else an embedded Postgres and a local nats-server.
// Needs a build first: npm run build
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import systemLib from '../../lib/system.cjs';
import devJwt from '../../lib/dev-jwt.cjs';
import bench from '../../lib/bench.cjs';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '50,200,500' },
    seconds: { type: 'string', default: '20' },
    'warmup-seconds': { type: 'string', default: '5' },
    'cpu-prof': { type: 'string' },
    'consumer-concurrency': { type: 'string', default: '4' },
    'data-dir': { type: 'string' },
  },
});
const userCount = Number(values.users);
const rates = values.rates.split(',').map(Number);
const seconds = Number(values.seconds);
const warmupSeconds = Number(values['warmup-seconds']);
for (const [name, value] of [['--users', userCount], ['--seconds', seconds], ...rates.map((rate) => ['--rates', rate])])
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
if (!Number.isFinite(warmupSeconds) || warmupSeconds < 0) throw new Error('--warmup-seconds must be 0 or more');

const calsyncServices = ['identity', 'subscription', 'meetings', 'gateway'];
const cpuProfArgs = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : [];
const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { meetingsV1 } = createRequire(join(rootDir, 'package.json'))('@calsync/proto');
const say = (line) => process.stdout.write(`${line}\n`);
const settleMs = 60_000;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const stallWindowMs = 250;
const stallMs = 100;

/**
 * Quarter-seconds of a rate (by delivery start) whose bookings took over 100 ms at the median:
 * tells a tail made of stalls, in which every booking waits, from one spread over the run. Each
 * stall is named by its start (seconds into the rate), its length and the leg that took longest.
 */
function findStalls(samples) {
  const windows = new Map();
  for (const sample of samples) {
    const index = Math.floor(sample.at / stallWindowMs);
    if (!windows.has(index)) windows.set(index, []);
    windows.get(index).push(sample);
  }
  const median = (values) =>
    percentile(
      values.toSorted((a, b) => a - b),
      50,
    ) ?? 0;
  const stalls = [];
  for (const index of [...windows.keys()].sort((a, b) => a - b)) {
    const inWindow = windows.get(index);
    if (median(inWindow.map((sample) => sample.total)) <= stallMs) continue;
    const last = stalls.at(-1);
    if (last && last.endIndex === index - 1) {
      last.endIndex = index;
      last.samples.push(...inWindow);
    } else stalls.push({ startIndex: index, endIndex: index, samples: [...inWindow] });
  }
  return stalls.map(({ startIndex, endIndex, samples: inStall }) => {
    const legMedians = ['ingress', 'apply', 'relay'].map((leg) => [
      leg,
      median(inStall.filter((sample) => sample[leg] !== undefined).map((sample) => sample[leg])),
    ]);
    return {
      atSeconds: (startIndex * stallWindowMs) / 1000,
      seconds: ((endIndex - startIndex + 1) * stallWindowMs) / 1000,
      slowestLeg: legMedians.sort((a, b) => b[1] - a[1])[0][0],
    };
  });
}

/** Runs `task` over `items` with at most `limit` at a time. */
async function inParallel(items, limit, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await task(items[index], index);
      }
    }),
  );
}

async function main() {
  bench.printBenchHeader(rootDir);
  const cleanup = bench.createCleanup();
  const scratchRoot = values['data-dir'] ?? tmpdir();
  const dir = mkdtempSync(join(scratchRoot, 'calsync-bench-e2e-'));
  if (!process.env.DATABASE_URL || !process.env.NATS_URL) say(`data: ${dir} (the embedded Postgres and nats-server)`);
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const { databaseUrl, natsUrl } = await bench.benchInfra({ dir, cleanup, scratchRoot });
    const prefix = `bench${Date.now().toString(36)}`;
    const system = await systemLib.startSystem({
      rootDir,
      databaseUrl,
      natsUrl,
      natsSubjectPrefix: prefix,
      logLevel: 'info',
      extraEnv: { meetings: { CONSUMER_CONCURRENCY: values['consumer-concurrency'] } },
      nodeArgs: values['cpu-prof']
        ? Object.fromEntries([...calsyncServices, 'calendly-sim'].map((service) => [service, cpuProfArgs]))
        : {},
    });
    cleanup.add(system.stop);
    const { gateway, simulator } = system.urls;

    // The subscriber: a plain NATS subscription to every user's change subject, as an internal
    // service would consume the feed. Each booking's first CREATED change is the one measured.
    const nc = await connect({ servers: natsUrl });
    cleanup.add(() => nc.close());
    const seen = new Map(); // invitee uri -> ms when its change arrived
    const changedAt = new Map(); // invitee uri -> ms when meetings recorded its change (before its commit)
    const feed = nc.subscribe(`${prefix}.meetings.changed.>`);
    void (async () => {
      for await (const message of feed) {
        const arrived = Date.now();
        const change = meetingsV1.MeetingChanged.decode(message.data);
        if (change.kind !== meetingsV1.MeetingChangeKind.MEETING_CHANGE_KIND_CREATED) continue;
        for (const invitee of change.meeting?.invitees ?? [])
          if (!seen.has(invitee.uri)) {
            seen.set(invitee.uri, arrived);
            if (change.changedAt) changedAt.set(invitee.uri, change.changedAt.getTime());
          }
      }
    })();

    say(`connecting ${userCount} users (personal tokens, 16 at a time)...`);
    const connectStarted = Date.now();
    const users = new Array(userCount);
    await inParallel([...users.keys()], 16, async (i) => {
      const calendly = await bench.json(`${simulator}/_sim/users`, {
        method: 'POST',
        body: { name: `Bench ${i}`, email: `bench${i}@example.test`, plan: 'standard' },
      });
      const token = devJwt.signDevJwt(`bench-user-${i}`, system.secrets.jwtSecret);
      await bench.json(`${gateway}/api/calendly/token`, {
        method: 'POST',
        token,
        body: { token: calendly.personal_access_token },
      });
      users[i] = { calendly, token };
    });
    say(`  connected in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s`);

    // Each connect starts the user's import on connect; the rates measure a system done with
    // them (live), not one still importing 1,000 users.
    say('waiting for every user to be live (the imports on connect done)...');
    const liveStarted = Date.now();
    const importing = new Set(users.keys());
    while (importing.size > 0) {
      if (Date.now() - liveStarted > settleMs)
        throw new Error(`${importing.size} users still importing after a minute`);
      await inParallel([...importing], 16, async (i) => {
        const { sync } = await bench.json(`${gateway}/api/calendly/connection`, { token: users[i].token });
        if (sync?.state === 'live') importing.delete(i);
        else if (sync?.state !== 'importing')
          throw new Error(`user ${i} is ${sync?.state} (${sync?.reason}): ${sync?.detail}`);
      });
      if (importing.size > 0) await sleep(250);
    }
    say(`  live in ${((Date.now() - liveStarted) / 1000).toFixed(1)} s`);

    const services = Object.entries(system.processes).filter(([name]) => name !== 'calendly-sim');
    // Everything that shares the machine's CPU during a rate, read the same way before and after.
    const cpuMeters = [
      ...Object.entries(system.processes).map(([name, p]) => ({
        name,
        cpuSeconds: () => bench.processUsage(p.child.pid).cpuSeconds,
      })),
      { name: 'postgres', cpuSeconds: () => bench.cpuSecondsOfCommand('postgres') },
      { name: 'nats-server', cpuSeconds: () => bench.cpuSecondsOfCommand('nats-server') },
      {
        name: 'this bench',
        cpuSeconds: () => {
          const { user, system: kernel } = process.cpuUsage();
          return (user + kernel) / 1e6;
        },
      },
    ];
    let bookingSeq = 0;
    let lastAttemptId = 0;
    const base = Date.now() + 24 * 3_600_000;
    /**
     * Books `total` bookings at `rate` a second, spread over every user, then waits (up to a
     * minute) until each booking's change reached the feed. The simulator paces them itself
     * (POST /_sim/bookings/paced), a second's worth per request sent half a second ahead: a
     * control request per booking cost this machine about 1.7 ms of CPU (the simulator's and this
     * bench's) that Calendly's own machines would spend, not calsync's.
     */
    const bookAtRate = async (rate, total) => {
      const perRequest = Math.max(1, Math.min(1_000, Math.round(rate)));
      const started = Date.now() + 200;
      const requests = [];
      for (let first = 0; first < total; first += perRequest) {
        const startAt = started + (first * 1000) / rate;
        const sendAt = startAt - 500;
        if (sendAt > Date.now()) await sleep(sendAt - Date.now());
        const bookings = [];
        for (let n = first; n < Math.min(total, first + perRequest); n++) {
          const seq = bookingSeq++;
          const user = users[seq % users.length];
          const start = new Date(base + seq * 60_000);
          bookings.push({
            user: user.calendly.uri,
            invitee: { name: `Invitee ${seq}`, email: `invitee${seq}@example.test` },
            start_time: start.toISOString(),
            end_time: new Date(start.getTime() + 1_800_000).toISOString(),
          });
        }
        requests.push(
          bench.json(`${simulator}/_sim/bookings/paced`, {
            method: 'POST',
            body: { per_second: rate, start_at: new Date(startAt).toISOString(), bookings },
          }),
        );
      }
      const booked = [];
      const bookingErrors = [];
      for (const outcome of await Promise.allSettled(requests)) {
        if (outcome.status === 'rejected') bookingErrors.push(outcome.reason);
        else
          for (const one of outcome.value.collection)
            if (one.invitee) booked.push(one.invitee);
            else bookingErrors.push(new Error(`booking refused: ${JSON.stringify(one.error)}`));
      }
      const issuedIn = (Date.now() - started) / 1000;
      const giveUp = Date.now() + settleMs;
      while (booked.some((uri) => !seen.has(uri)) && Date.now() < giveUp) await sleep(50);
      return { booked, bookingErrors, started, issuedIn };
    };
    /** The simulator's invitee.created delivery attempts since the last call. */
    const newAttempts = async () => {
      const attempts = (
        await bench.json(`${simulator}/_sim/deliveries?event=invitee.created&after=${lastAttemptId}`)
      ).collection.filter((attempt) => attempt.id > lastAttemptId);
      lastAttemptId = Math.max(lastAttemptId, ...attempts.map((attempt) => attempt.id));
      return attempts;
    };

    if (warmupSeconds > 0) {
      // Unmeasured: the services' JIT, their pools' connections and Postgres' caches warm up on
      // real bookings here, not in the first measured rate (which ran up to 30% more CPU per
      // booking than the same rate measured again).
      const warmRate = Math.max(...rates.filter((rate) => rate <= 200), Math.min(...rates));
      say(`warming up: ${warmupSeconds} s at ${warmRate}/s, not measured`);
      const warm = await bookAtRate(warmRate, Math.round(warmRate * warmupSeconds));
      if (warm.bookingErrors.length > 0) throw warm.bookingErrors[0];
      await newAttempts();
    }

    const results = [];
    for (const rate of rates) {
      const total = Math.round(rate * seconds);
      const machineBefore = bench.machineCpu();
      const metersBefore = cpuMeters.map((meter) => meter.cpuSeconds());
      const peakRss = Object.fromEntries(services.map(([name]) => [name, 0]));
      const sampleRss = () => {
        for (const [name, p] of services)
          peakRss[name] = Math.max(peakRss[name], bench.processUsage(p.child.pid).rssMb);
      };
      const rssTimer = setInterval(sampleRss, 500);
      const { booked, bookingErrors, started, issuedIn } = await bookAtRate(rate, total);
      clearInterval(rssTimer);
      sampleRss();
      const load = loadavg();
      const machineAfter = bench.machineCpu();
      const metersAfter = cpuMeters.map((meter) => meter.cpuSeconds());
      const windowSeconds = (Date.now() - started) / 1000;

      const attempts = await newAttempts();
      const firstStart = new Map(); // invitee uri -> first attempt's start
      const firstAnswered = new Map(); // invitee uri -> when the gateway answered the first attempt
      const refused = new Map(); // status (or error) -> count
      for (const attempt of attempts) {
        const uri = JSON.parse(attempt.body)?.payload?.uri;
        if (attempt.attempt === 1) {
          firstStart.set(uri, new Date(attempt.started_at).getTime());
          firstAnswered.set(uri, new Date(attempt.started_at).getTime() + attempt.duration_ms);
        }
        if (attempt.outcome === 'failed') {
          const why = attempt.status ?? attempt.error ?? 'unknown';
          refused.set(why, (refused.get(why) ?? 0) + 1);
        }
      }
      const latencies = [];
      // The same path in three legs (one clock: every process runs on this machine): the gateway's
      // answer (verify, JetStream ack), from there to meetings recording the change (the consumer's
      // queue and the apply up to its last statement), and from there to the subscriber (the commit,
      // the relay and the feed).
      const legs = { ingress: [], apply: [], relay: [] };
      const samples = [];
      for (const uri of booked) {
        const arrived = seen.get(uri);
        const sent = firstStart.get(uri);
        if (arrived === undefined || sent === undefined) continue;
        latencies.push(arrived - sent);
        const sample = { at: sent - started, total: arrived - sent };
        samples.push(sample);
        const answered = firstAnswered.get(uri);
        const recorded = changedAt.get(uri);
        if (answered === undefined || recorded === undefined) continue;
        sample.ingress = answered - sent;
        sample.apply = recorded - answered;
        sample.relay = arrived - recorded;
        for (const leg of Object.keys(legs)) legs[leg].push(sample[leg]);
      }
      const stalls = findStalls(samples);
      latencies.sort((a, b) => a - b);
      for (const leg of Object.values(legs)) leg.sort((a, b) => a - b);
      const missing = booked.filter((uri) => !seen.has(uri)).length;
      const achieved = total / issuedIn;
      // Where the CPU went while the bookings were issued and carried: the machine's share busy,
      // and each service's share of one core (a service near 100% is single-threaded and saturated).
      const machineBusy = (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total);
      const cpuShares = cpuMeters.map(({ name }, i) => {
        const cpu = metersAfter[i] - metersBefore[i];
        return { name, cpu, share: cpu / windowSeconds };
      });
      const unaccounted = machineBusy * cpus().length - cpuShares.reduce((sum, { share }) => sum + share, 0);

      const broke = [];
      if (bookingErrors.length > 0) broke.push(`${bookingErrors.length} bookings refused by the simulator`);
      if (achieved < rate * 0.95) broke.push(`the simulator took bookings at only ${achieved.toFixed(0)}/s`);
      if (refused.size > 0)
        broke.push(
          `delivery attempts failed (Calendly retries them): ${[...refused].map(([why, n]) => `${n} x ${why}`).join(', ')}`,
        );
      if (missing > 0) broke.push(`${missing} changes never reached the feed within ${settleMs / 1000} s`);
      // Changes still arriving well after the last booking: the pipeline carries fewer a second
      // than were booked, and a backlog grows for as long as the rate lasts.
      const arrivals = booked.map((uri) => seen.get(uri)).filter((at) => at !== undefined);
      const lastArrival = Math.max(...arrivals);
      const behindMs = lastArrival - (started + issuedIn * 1000);
      if (arrivals.length > 0 && behindMs > 1_000)
        broke.push(
          `the feed fell behind: it carried ${((arrivals.length * 1000) / (lastArrival - started)).toFixed(0)} changes/s ` +
            `against ${achieved.toFixed(0)}/s booked; the last arrived ${(behindMs / 1000).toFixed(1)} s after the last booking, ` +
            `with the machine's CPU ${(machineBusy * 100).toFixed(0)}% busy`,
        );
      say('');
      say(`rate ${rate}/s: simulator delivery start -> MeetingChanged received on the feed`);
      say(`  bookings        ${booked.length} over ${userCount} users at ${achieved.toFixed(1)}/s (asked ${rate}/s)`);
      if (latencies.length > 0) {
        say(`  p50             ${percentile(latencies, 50)} ms`);
        say(`  p90             ${percentile(latencies, 90)} ms`);
        say(`  p99             ${percentile(latencies, 99)} ms`);
        say(`  max             ${latencies[latencies.length - 1]} ms`);
      }
      if (legs.ingress.length > 0)
        say(
          `  legs p50 / p99  ${Object.entries(legs)
            .map(([name, leg]) => `${name} ${Math.round(percentile(leg, 50))} / ${Math.round(percentile(leg, 99))} ms`)
            .join(', ')} (ingress: delivery start -> gateway's 2xx; apply: -> change recorded; relay: -> received)`,
        );
      say(
        `  stalls          ${
          stalls.length === 0
            ? 'none'
            : `${stalls.length} (${stalls.reduce((sum, stall) => sum + stall.seconds, 0).toFixed(2)} s in all): ` +
              stalls
                .slice(0, 8)
                .map(
                  (stall) => `${stall.seconds.toFixed(2)} s from ${stall.atSeconds.toFixed(2)} s, ${stall.slowestLeg}`,
                )
                .join('; ') +
              (stalls.length > 8 ? '; ...' : '')
        } (quarter-seconds whose bookings took over ${stallMs} ms at the median, and the slowest leg in them)`,
      );
      for (const [name] of services) {
        const { cpu } = cpuShares.find((meter) => meter.name === name);
        say(
          `  ${name.padEnd(15)} ${((cpu * 1000) / Math.max(1, booked.length)).toFixed(2)} ms CPU per booking, peak RSS ${peakRss[name].toFixed(0)} MB`,
        );
      }
      say(`  load average    ${load.map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores`);
      say(
        `  CPU busy        machine ${(machineBusy * 100).toFixed(0)}% of ${cpus().length} cores over ${windowSeconds.toFixed(1)} s; ` +
          [...cpuShares, { name: 'the rest', share: unaccounted }]
            // Shares are read from clock ticks: 'the rest' can come out a tick below zero.
            .map(({ name, share }) => `${name} ${Math.max(0, Math.round(share * 100))}%`)
            .join(', ') +
          ' of one core',
      );
      say(`  broke first     ${broke.length === 0 ? 'nothing' : broke.join('; ')}`);
      results.push({ rate, p99: percentile(latencies, 99), broke });
    }
    say('');
    say(
      'summary: ' +
        results.map((r) => `${r.rate}/s p99 ${r.p99 ?? '-'} ms${r.broke.length ? ' (broke)' : ''}`).join(', '),
    );
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
