import type { Client } from 'pg';
import { connectDedicated, prepared, tryLockForSession, type Logger, type Pool } from '@calsync/service-kit';
import { outboxChannel } from './meeting-changes';

/** Publishes one change; resolves once the feed stored it. `changeId` is its message id. */
export type PublishChange = (userId: string, message: Uint8Array, changeId: string) => Promise<void>;

/** An outbox row a writer in the relay's own process committed, as it wrote it. */
export interface CommittedChange {
  seq: string;
  changeId: string;
  userId: string;
  message: Uint8Array;
  /** The seqs of the user's rows that were in the outbox before it, read under the user's lock. */
  earlierSeqs: string[];
}

/**
 * A relay as the writers in its own process see it. While it leads, a writer can leave out the
 * NOTIFY and hand its change over once committed: the commit then costs Postgres no notification
 * to deliver and this process none to read, and the relay publishes the change without reading
 * the outbox. A writer that found it leading and committed after it lost the lead leaves its row
 * to the next leader, which relays everything waiting as it takes over (and on its timer).
 */
export interface LocalRelay {
  /** True while this relay holds the relay lock and listens. */
  leading(): boolean;
  /** Relays what is waiting now, as a NOTIFY would: call it after the commit, never before. */
  wake(): void;
  /**
   * Publishes a committed change at once when every earlier row of its user was already
   * published (the user's order holds); otherwise relays everything waiting, in order, as wake
   * does. Call it after the commit, never before.
   */
  handOver(change: CommittedChange): void;
}

export interface OutboxRelay extends LocalRelay {
  start(): void;
  /** Stops relaying and gives up the relay lock, letting another replica take over. Idempotent. */
  stop(): Promise<void>;
}

interface OutboxRow {
  seq: string;
  change_id: string;
  user_id: string;
  message: Buffer;
}

/**
 * Moves outbox rows to the change feed. One replica relays at a time (it holds a session
 * advisory lock on a connection of its own; the others wait for it), woken by NOTIFY at each
 * commit (or handed the change by a writer in its own process, LocalRelay) and by a timer. A
 * user's rows are published one after another in seq order, different users' side by side; a row
 * is deleted only after the feed acknowledged it (by the next read's statement, or at stop). A
 * relay that dies between the two republishes the row under the same message id, which
 * JetStream's duplicate window drops, so consumers see every change once; so does a row a read
 * takes while its hand-over is still being published.
 */
export function createOutboxRelay(deps: {
  pool: Pool;
  databaseUrl: string;
  /** Names the relay's lock, so installations sharing a database do not wait on each other. */
  lockName: string;
  publish: PublishChange;
  log: Logger;
  pollMs?: number;
  batchSize?: number;
  onPublished?: (count: number) => void;
}): OutboxRelay {
  const { pool, log } = deps;
  const pollMs = deps.pollMs ?? 1_000;
  const batchSize = deps.batchSize ?? 500;
  let listener: Client | undefined;
  let leading = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let draining: Promise<void> | undefined;
  let again = false;

  // Rows published and not yet deleted: each batch's statement deletes them as it reads the next
  // batch, so a wake-up costs one round trip to Postgres, not two, and a hand-over none. They wait
  // at most until the next read (the next NOTIFY or hand-over that must read, else the timer, else
  // stop); a relay that dies first leaves them to be republished under their change ids, which
  // the feed's duplicate window drops.
  const publishedUndeleted = new Set<string>();
  const handingOver = new Set<Promise<void>>();

  const forgetDeleted = (settled: string[]) => {
    for (const seq of settled) publishedUndeleted.delete(seq);
  };

  /** Deletes what was published and publishes one batch; true when there may be more waiting. */
  const relayBatch = async (): Promise<boolean> => {
    const settled = [...publishedUndeleted];
    // Prepared: the relay runs this once per wake-up, up to one per committed change. The SELECT
    // sees the rows its own DELETE removes (every part of a statement reads the state before it).
    const { rows } = await pool.query<OutboxRow>(
      prepared(
        `WITH settled AS (DELETE FROM outbox WHERE seq = ANY($2::bigint[]))
         SELECT seq, change_id, user_id, message FROM outbox WHERE seq <> ALL($2::bigint[]) ORDER BY seq LIMIT $1`,
        [batchSize, settled],
      ),
    );
    forgetDeleted(settled);
    if (rows.length === 0) return false;
    const byUser = new Map<string, OutboxRow[]>();
    for (const row of rows) byUser.set(row.user_id, [...(byUser.get(row.user_id) ?? []), row]);
    let published = 0;
    let failed = false;
    await Promise.all(
      [...byUser.values()].map(async (userRows) => {
        for (const row of userRows) {
          try {
            await deps.publish(row.user_id, row.message, row.change_id);
            publishedUndeleted.add(row.seq);
            published++;
          } catch (error) {
            // The user's later changes wait for this one, so their order holds.
            failed = true;
            log.warn({ err: error, seq: row.seq }, 'could not publish a meeting change; will retry');
            return;
          }
        }
      }),
    );
    if (published > 0) deps.onPublished?.(published);
    return !failed && rows.length === batchSize;
  };

  /** Deletes the rows published since the last batch read (at stop: the next leader need not republish them). */
  const deletePublished = async () => {
    const settled = [...publishedUndeleted];
    if (settled.length === 0) return;
    await pool.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [settled]);
    forgetDeleted(settled);
  };

  const drain = () => {
    if (!leading || stopped) return;
    if (draining) {
      again = true;
      return;
    }
    draining = (async () => {
      do {
        again = false;
        try {
          while (leading && !stopped && (await relayBatch()));
        } catch (error) {
          log.warn({ err: error }, 'outbox relay failed; will retry');
        }
      } while (again && leading && !stopped);
    })().finally(() => {
      draining = undefined;
    });
  };

  const handOver = (change: CommittedChange) => {
    if (!leading || stopped) return;
    // A user's earlier row not yet published (another replica's, or one still on its way to the
    // feed) goes first: a read publishes the user's rows in order, this one among them.
    if (!change.earlierSeqs.every((seq) => publishedUndeleted.has(seq))) return drain();
    const published = deps.publish(change.userId, change.message, change.changeId).then(
      () => {
        publishedUndeleted.add(change.seq);
        deps.onPublished?.(1);
      },
      (error: unknown) => {
        // Still in the outbox: the next read publishes it, before any later change of the user.
        log.warn({ err: error, seq: change.seq }, 'could not publish a meeting change; will retry');
        drain();
      },
    );
    handingOver.add(published);
    void published.finally(() => handingOver.delete(published));
  };

  const lead = async () => {
    const client = await connectDedicated({ url: deps.databaseUrl, applicationName: 'meetings-outbox-relay', log });
    client.on('error', () => {
      leading = false;
      if (listener === client) listener = undefined;
    });
    try {
      const locked = await tryLockForSession(client, { namespace: 'meetings.outbox-relay', name: deps.lockName });
      if (locked && !stopped) {
        client.on('notification', drain);
        await client.query(`LISTEN ${outboxChannel}`);
      }
      // Stopped while this was under way: stop() waits for it, and ending the session here is
      // what gives the lock back (kept, it would outlive stop and no replica could relay).
      if (!locked || stopped) {
        await client.end();
        return;
      }
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    listener = client;
    leading = true;
    log.info('relaying the meetings outbox');
  };

  let leadAttempt: Promise<void> | undefined;
  const tick = async () => {
    if (stopped) return;
    if (!listener) {
      leadAttempt = lead().catch((error: unknown) => log.warn({ err: error }, 'outbox relay cannot lead yet'));
      await leadAttempt;
      // stop() came while this was leading: no drain, and no timer after the one it cleared.
      if (stopped) return;
    }
    drain();
    timer = setTimeout(() => void tick(), pollMs);
    timer.unref();
  };

  return {
    start() {
      void tick();
    },
    leading: () => leading && !stopped,
    wake: drain,
    handOver,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await leadAttempt;
      await Promise.all(handingOver);
      await draining;
      await deletePublished().catch((error: unknown) =>
        log.warn(
          { err: error },
          'could not delete published outbox rows; the next relay republishes them as duplicates',
        ),
      );
      leading = false;
      const client = listener;
      listener = undefined;
      // Ending the session releases the lock for another replica.
      await client?.end().catch(() => undefined);
    },
  };
}
