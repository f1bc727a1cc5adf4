import { inTransactionWithFewerRoundTrips, type Logger, type Pool, type Transaction } from '@calsync/service-kit';
import type { QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { parseDelivery, type Delivery, type InviteeChange, type ParsedDelivery } from './calendly-payload';
import {
  recordDeliverySql,
  recordDeliveryStatement,
  type DeliveryLogInput,
  type DeliveryOutcome,
} from '../deliveries/delivery-log';
import { changeKindOf, recordChangeStatement, type RecordedChangeRow } from '../feed/meeting-changes';
import type { CommittedChange, LocalRelay } from '../feed/outbox-relay';
import { meetingWrites } from './meeting-repository';

/** applied: the delivery changed (or confirmed) state; duplicate: its key was already applied; ignored: not a meetings event. */
export type ApplyOutcome = 'applied' | 'duplicate' | 'ignored';

export interface ApplyObserver {
  (outcome: ApplyOutcome, eventType: string, seconds: number): void;
}

export interface MeetingsApplier {
  /**
   * Applies one delivery exactly once: its key, its effect and its MeetingChanged event (when it
   * changed what a reader sees) commit together or not at all. Resolves once committed.
   * Throws MalformedEventError for a delivery that can never apply; any other error is worth a retry.
   */
  apply(delivery: Delivery): Promise<ApplyOutcome>;
}

// Deadlocks and serialization failures are the database asking us to simply try again.
const retryableCodes = new Set(['40P01', '40001']);
const maxAttempts = 3;

/**
 * Deliveries one transaction applies at most: a backlog commits in a few transactions, and none
 * holds its users' locks (or keeps its first delivery waiting) for long.
 */
const maxDeliveriesPerTransaction = 64;

/** Runs a delivery's last statement: with the COMMIT in its round trip when it ends the transaction. */
type LastStatement = <R extends QueryResultRow>(statement: QueryConfig<unknown[]>) => Promise<QueryResult<R>>;

/** A delivery waiting for a transaction to apply it. */
interface Waiting {
  delivery: Delivery;
  parsed: ParsedDelivery;
  /** When apply was called: what the observer times. */
  started: bigint;
  resolve(outcome: ApplyOutcome): void;
  reject(error: unknown): void;
}

/** What applying a delivery did, known once its transaction committed. */
interface Applied {
  outcome: ApplyOutcome;
  eventType: string;
  /** Its change, for the relay, when it recorded one to hand over. */
  committed?: CommittedChange;
}

// A user's lock is taken by the first statement of each of the user's deliveries: transactions
// that take their users in one order never wait on each other in a circle. (Two users whose locks
// share a key may still deadlock; Postgres breaks it, and each delivery is then applied alone.)
const byUser = (a: Waiting, b: Waiting) =>
  a.delivery.userId < b.delivery.userId ? -1 : a.delivery.userId > b.delivery.userId ? 1 : 0;

export function createMeetingsApplier(deps: {
  pool: Pool;
  log: Logger;
  observe?: ApplyObserver;
  /** Told the number of deliveries each committed transaction applied. */
  observeTransaction?: (deliveries: number) => void;
  /** The outbox relay in this process: handed each change after its commit while it leads, instead of a NOTIFY. */
  relay?: LocalRelay;
  /**
   * Transactions applying deliveries at once (default 4). Each applies every delivery waiting
   * when it begins (up to maxDeliveriesPerTransaction) and commits them together.
   */
  transactions?: number;
}): MeetingsApplier {
  const { pool, log, relay } = deps;
  const transactions = Math.max(1, deps.transactions ?? 4);

  // A webhook delivery's outcome goes into the delivery log in the transaction that decided it;
  // a backfill's fetches are not deliveries (no receivedAt) and have no entry.
  const logEntry = (delivery: Delivery, eventType: string, outcome: DeliveryOutcome): DeliveryLogInput | null =>
    delivery.receivedAt
      ? {
          userId: delivery.userId,
          deliveryKey: delivery.deliveryKey,
          eventType,
          outcome,
          receivedAt: delivery.receivedAt,
        }
      : null;

  // A delivery's log row, as its last statement; a backfill's fetch has none.
  const logDelivery = async (last: LastStatement, delivery: Delivery, eventType: string, outcome: DeliveryOutcome) => {
    const entry = logEntry(delivery, eventType, outcome);
    if (entry) await last(recordDeliveryStatement(entry));
  };

  /**
   * Applies one delivery in `tx`. With `commit`, its last statement carries the transaction's
   * COMMIT (without a log entry, inTransactionWithFewerRoundTrips commits on its own); without,
   * the transaction goes on to the next delivery.
   */
  async function applyIn(tx: Transaction, waiting: Waiting, commit: boolean): Promise<Applied> {
    const { delivery, parsed } = waiting;
    const last: LastStatement = (statement) => (commit ? tx.commitWith(statement) : tx.query(statement));
    if (parsed.kind === 'ignored') {
      const fresh = await meetingWrites.claimDelivery(tx, {
        userId: delivery.userId,
        deliveryKey: delivery.deliveryKey,
        eventType: parsed.eventType,
        outcome: 'ignored',
      });
      const outcome: ApplyOutcome = fresh ? 'ignored' : 'duplicate';
      await logDelivery(last, delivery, parsed.eventType, outcome);
      return { outcome, eventType: parsed.eventType };
    }
    return applyChange(tx, delivery, parsed.change, last);
  }

  // Every step is one round trip, and each costs CPU here and in Postgres: the BEGIN travels with
  // the claim, which takes the user's lock in the same statement, and the upsert of the meeting
  // and its invitee follows it in the same round trip, in the statement that reads the
  // before-snapshot and the after-snapshot with the status inputs (read again only after a
  // reschedule link); and the change's outbox row, the delivery's log row and the COMMIT go
  // together. Two round trips for a new booking. While this process's relay leads, the change is
  // handed to it after the commit, as written: the relay publishes it without reading the outbox
  // (a round trip less) and Postgres sends no NOTIFY (a notification less to deliver and to read);
  // otherwise the statement's NOTIFY wakes the relay.
  async function applyChange(
    tx: Transaction,
    delivery: Delivery,
    change: InviteeChange,
    last: LastStatement,
  ): Promise<Applied> {
    const { eventType } = change;
    const claimed = await meetingWrites.claimAndUpsert(tx, change);
    if (!claimed) {
      await logDelivery(last, delivery, eventType, 'duplicate');
      return { outcome: 'duplicate', eventType };
    }
    const { before, after: written } = claimed;
    const meetingId = written.meeting.id;
    const { invitee } = change;
    if (invitee.oldInviteeUri)
      await meetingWrites.linkReschedule(tx, change.userId, invitee.oldInviteeUri, invitee.uri);
    if (invitee.newInviteeUri)
      await meetingWrites.linkReschedule(tx, change.userId, invitee.uri, invitee.newInviteeUri);
    // A reschedule link changes what the invitees read (their old and new invitee): read them again.
    const linked = Boolean(invitee.oldInviteeUri || invitee.newInviteeUri);
    const after = await meetingWrites.settleStatus(tx, change.userId, meetingId, linked ? undefined : written);
    const kind = changeKindOf(before, after, {
      eventType,
      rescheduled: invitee.rescheduled || Boolean(invitee.newInviteeUri),
    });
    if (!kind) {
      await logDelivery(last, delivery, eventType, 'applied');
      return { outcome: 'applied', eventType };
    }
    const entry = logEntry(delivery, eventType, 'applied');
    // Asked as late as possible before the commit; a retried delivery asks again.
    const handOver = relay?.leading() ?? false;
    const { changeId, message, statement } = recordChangeStatement(
      { userId: change.userId, kind, meeting: after, eventType },
      {
        alongside: entry ? (bind) => recordDeliverySql(entry, bind) : undefined,
        wakeUp: handOver ? 'hand-over' : 'notify',
      },
    );
    const { rows } = await last<RecordedChangeRow>(statement);
    // The statement answers its one row; without it, the relay's timer would read the change.
    const [recorded] = rows;
    const committed =
      handOver && recorded
        ? { seq: recorded.seq, earlierSeqs: recorded.earlier_seqs, changeId, userId: change.userId, message }
        : undefined;
    return { outcome: 'applied', eventType, ...(committed ? { committed } : {}) };
  }

  /** Once committed: the relay may publish the change, and the caller hears the outcome. */
  const settle = (waiting: Waiting, applied: Applied) => {
    try {
      if (applied.committed) relay?.handOver(applied.committed);
      const seconds = Number(process.hrtime.bigint() - waiting.started) / 1e9;
      deps.observe?.(applied.outcome, applied.eventType, seconds);
      log.debug(
        {
          userId: waiting.delivery.userId,
          deliveryKey: waiting.delivery.deliveryKey,
          eventType: applied.eventType,
          outcome: applied.outcome,
        },
        'delivery processed',
      );
    } catch (error) {
      // Committed all the same: the relay's timer finds an unrelayed change.
      log.error({ err: error, deliveryKey: waiting.delivery.deliveryKey }, 'could not report an applied delivery');
    }
    waiting.resolve(applied.outcome);
  };

  /** One delivery in a transaction of its own, tried again when Postgres asks for it. */
  async function applyAlone(waiting: Waiting): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const applied = await inTransactionWithFewerRoundTrips(pool, (tx) => applyIn(tx, waiting, true));
        deps.observeTransaction?.(1);
        return settle(waiting, applied);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt >= maxAttempts || typeof code !== 'string' || !retryableCodes.has(code))
          return waiting.reject(error);
        log.warn({ code, attempt, deliveryKey: waiting.delivery.deliveryKey }, 'transaction conflict; retrying');
      }
    }
  }

  /**
   * Applies the deliveries in one transaction, one after another, and commits them with one
   * COMMIT: on a disk whose fsync takes tens of milliseconds under load, a backlog then costs one
   * fsync per transaction, not one per delivery. When anything in it fails, nothing of it
   * committed, and each delivery is applied alone: only a failing delivery fails.
   */
  async function applyTogether(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return applyAlone(batch[0]!);
    batch.sort(byUser);
    let applied: Applied[];
    try {
      applied = await inTransactionWithFewerRoundTrips(pool, async (tx) => {
        const results: Applied[] = [];
        for (const [i, waiting] of batch.entries()) results.push(await applyIn(tx, waiting, i === batch.length - 1));
        return results;
      });
    } catch (error) {
      log.debug(
        { err: error, deliveries: batch.length },
        'a transaction of several deliveries failed; applying each alone',
      );
      for (const waiting of batch) await applyAlone(waiting);
      return;
    }
    deps.observeTransaction?.(batch.length);
    for (const [i, waiting] of batch.entries()) settle(waiting, applied[i]!);
  }

  const waiting: Waiting[] = [];
  let running = 0;

  /**
   * The waiting deliveries the next transaction applies: up to maxDeliveriesPerTransaction, in the
   * order they came, and never two with one key (a redelivery waiting beside its original): a
   * transaction claims each key once (meetingWrites.claimAndUpsert). A repeated key waits for the
   * next transaction, where it is the duplicate it is.
   */
  function nextBatch(): Waiting[] {
    const batch: Waiting[] = [];
    const keys = new Set<string>();
    let kept = 0;
    for (const one of waiting) {
      const key = `${one.delivery.userId}\n${one.delivery.deliveryKey}`;
      if (batch.length < maxDeliveriesPerTransaction && !keys.has(key)) {
        keys.add(key);
        batch.push(one);
      } else waiting[kept++] = one;
    }
    waiting.length = kept;
    return batch;
  }

  /** Runs transactions while deliveries wait; up to `transactions` of these run at once. */
  async function applyWaiting(): Promise<void> {
    running++;
    try {
      while (waiting.length > 0) await applyTogether(nextBatch());
    } finally {
      running--;
    }
  }

  return {
    apply(delivery) {
      return new Promise<ApplyOutcome>((resolve, reject) => {
        // A delivery that can never apply is refused here, before it waits for a transaction.
        const parsed = parseDelivery(delivery);
        waiting.push({ delivery, parsed, started: process.hrtime.bigint(), resolve, reject });
        if (running < transactions) void applyWaiting();
      });
    },
  };
}
