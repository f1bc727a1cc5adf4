import { inTransactionWithFewerRoundTrips, type Logger, type Pool, type Transaction } from '@calsync/service-kit';
import { parseDelivery, type Delivery, type InviteeChange } from './calendly-payload';
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
   * changed what a reader sees) commit together or not at all.
   * Throws MalformedEventError for a delivery that can never apply; any other error is worth a retry.
   */
  apply(delivery: Delivery): Promise<ApplyOutcome>;
}

// Deadlocks and serialization failures are the database asking us to simply try again.
const retryableCodes = new Set(['40P01', '40001']);
const maxAttempts = 3;

export function createMeetingsApplier(deps: {
  pool: Pool;
  log: Logger;
  observe?: ApplyObserver;
  /** The outbox relay in this process: handed each change after its commit while it leads, instead of a NOTIFY. */
  relay?: LocalRelay;
}): MeetingsApplier {
  const { pool, log, relay } = deps;

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
  // The transaction's last statement, with the COMMIT in its round trip; without an entry,
  // inTransactionWithFewerRoundTrips commits on its own.
  const logDeliveryAndCommit = async (
    tx: Transaction,
    delivery: Delivery,
    eventType: string,
    outcome: DeliveryOutcome,
  ) => {
    const entry = logEntry(delivery, eventType, outcome);
    if (entry) await tx.commitWith(recordDeliveryStatement(entry));
  };

  // Every step is one round trip, and each costs CPU here and in Postgres: the BEGIN travels with
  // the claim, which takes the user's lock in the same statement; the meeting and its invitee are
  // upserted together, in the statement that reads the before-snapshot and the after-snapshot with
  // the status inputs (read again only after a reschedule link); and the change's outbox row, the
  // delivery's log row and the COMMIT go together. Three round trips for a new booking. While this
  // process's relay leads, the change is handed to it after the commit, as written: the relay
  // publishes it without reading the outbox (a round trip less) and Postgres sends no NOTIFY (a
  // notification less to deliver and to read); otherwise the statement's NOTIFY wakes the relay.
  async function applyChange(delivery: Delivery, change: InviteeChange): Promise<ApplyOutcome> {
    // The change to hand to the relay once committed.
    let committed: CommittedChange | undefined;
    const outcome = await inTransactionWithFewerRoundTrips(pool, async (tx): Promise<ApplyOutcome> => {
      const fresh = await meetingWrites.claimDeliveryLockingUser(tx, {
        userId: change.userId,
        deliveryKey: change.deliveryKey,
        eventType: change.eventType,
      });
      if (!fresh) {
        await logDeliveryAndCommit(tx, delivery, change.eventType, 'duplicate');
        return 'duplicate';
      }
      const { before, after: written } = await meetingWrites.upsertMeetingAndInvitee(tx, change);
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
        eventType: change.eventType,
        rescheduled: invitee.rescheduled || Boolean(invitee.newInviteeUri),
      });
      if (kind) {
        const entry = logEntry(delivery, change.eventType, 'applied');
        // Asked as late as possible before the commit; a retried delivery asks again.
        const handOver = relay?.leading() ?? false;
        const { changeId, message, statement } = recordChangeStatement(
          { userId: change.userId, kind, meeting: after, eventType: change.eventType },
          {
            alongside: entry ? (bind) => recordDeliverySql(entry, bind) : undefined,
            wakeUp: handOver ? 'hand-over' : 'notify',
          },
        );
        const { rows } = await tx.commitWith<RecordedChangeRow>(statement);
        // The statement answers its one row; without it, the relay's timer would read the change.
        const [recorded] = rows;
        if (handOver && recorded)
          committed = {
            seq: recorded.seq,
            earlierSeqs: recorded.earlier_seqs,
            changeId,
            userId: change.userId,
            message,
          };
      } else {
        await logDeliveryAndCommit(tx, delivery, change.eventType, 'applied');
      }
      return 'applied';
    });
    // Committed: the relay may publish it.
    if (committed) relay?.handOver(committed);
    return outcome;
  }

  async function applyOnce(delivery: Delivery): Promise<{ outcome: ApplyOutcome; eventType: string }> {
    const parsed = parseDelivery(delivery);
    if (parsed.kind === 'ignored') {
      const outcome = await inTransactionWithFewerRoundTrips(pool, async (tx) => {
        const fresh = await meetingWrites.claimDelivery(tx, {
          userId: delivery.userId,
          deliveryKey: delivery.deliveryKey,
          eventType: parsed.eventType,
          outcome: 'ignored',
        });
        const result: ApplyOutcome = fresh ? 'ignored' : 'duplicate';
        await logDeliveryAndCommit(tx, delivery, parsed.eventType, result);
        return result;
      });
      return { outcome, eventType: parsed.eventType };
    }
    return { outcome: await applyChange(delivery, parsed.change), eventType: parsed.change.eventType };
  }

  return {
    async apply(delivery) {
      const started = process.hrtime.bigint();
      for (let attempt = 1; ; attempt++) {
        try {
          const { outcome, eventType } = await applyOnce(delivery);
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          deps.observe?.(outcome, eventType, seconds);
          log.debug(
            { userId: delivery.userId, deliveryKey: delivery.deliveryKey, eventType, outcome },
            'delivery processed',
          );
          return outcome;
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (attempt >= maxAttempts || typeof code !== 'string' || !retryableCodes.has(code)) throw error;
          log.warn({ code, attempt, deliveryKey: delivery.deliveryKey }, 'transaction conflict; retrying');
        }
      }
    },
  };
}
