import type { CalendlyClient, Invitee, ScheduledEvent } from '@calsync/calendly-client';
import type { Logger } from '@calsync/service-kit';
import { MalformedEventError } from '../meetings/calendly-payload';
import type { MeetingsApplier } from '../meetings/meetings-applier';

/** A backfill that cannot succeed however often it is retried (no connection, bad window). */
export class BackfillRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackfillRejectedError';
  }
}

export interface BackfillRequest {
  requestId: string;
  userId: string;
  /** The Calendly user the request was made for; the connection's current user is used when empty. */
  calendlyUserUri: string;
  windowStart?: Date;
  windowEnd?: Date;
  reason: string;
}

/** A valid Calendly access token for a platform user (from identity). */
export interface TokenSource {
  /** Throws BackfillRejectedError when the user has no usable connection. */
  accessToken(userId: string): Promise<{ accessToken: string; calendlyUserUri: string }>;
}

export interface BackfillResult {
  events: number;
  invitees: number;
  applied: number;
  duplicates: number;
  skipped: number;
}

export interface Backfill {
  /**
   * Fetches the user's scheduled events starting in the window, with every invitee, and applies
   * each invitee as a synthetic invitee.created / invitee.canceled delivery through the same
   * applier as webhook deliveries. Safe to run again: each synthetic delivery has its own key.
   */
  run(request: BackfillRequest, progress?: { working(): void }): Promise<BackfillResult>;
}

const pageSize = 100;
const maxWindowMs = 5 * 366 * 24 * 3_600_000;

export function createBackfill(deps: {
  log: Logger;
  tokens: TokenSource;
  calendly: CalendlyClient;
  applier: MeetingsApplier;
  now?: () => Date;
  observe?: (outcome: 'completed' | 'failed', invitees: number) => void;
}): Backfill {
  const { log, calendly, applier } = deps;
  const now = deps.now ?? (() => new Date());

  async function* pages<T>(
    fetchPage: (
      pageToken: string | undefined,
    ) => Promise<{ collection: T[]; pagination: { next_page_token: string | null } }>,
  ): AsyncGenerator<T[]> {
    let pageToken: string | undefined;
    do {
      const page = await fetchPage(pageToken);
      yield page.collection;
      pageToken = page.pagination.next_page_token ?? undefined;
    } while (pageToken);
  }

  return {
    async run(request, progress) {
      const result: BackfillResult = { events: 0, invitees: 0, applied: 0, duplicates: 0, skipped: 0 };
      try {
        await fill(request, result, progress);
      } catch (error) {
        deps.observe?.('failed', result.invitees);
        throw error;
      }
      deps.observe?.('completed', result.invitees);
      log.info(
        { requestId: request.requestId, userId: request.userId, reason: request.reason, ...result },
        'backfill done',
      );
      return result;
    },
  };

  async function fill(request: BackfillRequest, result: BackfillResult, progress?: { working(): void }): Promise<void> {
    const { windowStart, windowEnd } = request;
    if (!request.requestId) throw new BackfillRejectedError('request_id is required');
    if (!request.userId) throw new BackfillRejectedError('user_id is required');
    if (!windowStart || !windowEnd) throw new BackfillRejectedError('window_start and window_end are required');
    if (windowStart.getTime() >= windowEnd.getTime())
      throw new BackfillRejectedError('window_start must be before window_end');
    if (windowEnd.getTime() - windowStart.getTime() > maxWindowMs)
      throw new BackfillRejectedError('the window is longer than 5 years');

    const token = await deps.tokens.accessToken(request.userId);
    const calendlyUser = token.calendlyUserUri || request.calendlyUserUri;
    if (request.calendlyUserUri && token.calendlyUserUri && request.calendlyUserUri !== token.calendlyUserUri)
      log.warn(
        { requestId: request.requestId, userId: request.userId },
        'backfill asked for another Calendly user than the current connection; using the connection',
      );
    // Taken before reading, so a webhook created after this read always counts as newer.
    const fetchedAt = now().toISOString();

    const applyInvitee = async (event: ScheduledEvent, invitee: Invitee) => {
      const eventType = invitee.status === 'canceled' ? 'invitee.canceled' : 'invitee.created';
      const body = {
        event: eventType,
        created_at: fetchedAt,
        created_by: calendlyUser,
        payload: { ...invitee, scheduled_event: event },
      };
      try {
        const outcome = await applier.apply({
          deliveryKey: `backfill:${request.requestId}:${invitee.uri}`,
          userId: request.userId,
          eventType,
          payload: Buffer.from(JSON.stringify(body)),
        });
        if (outcome === 'duplicate') result.duplicates++;
        else result.applied++;
      } catch (error) {
        // One invitee Calendly describes oddly must not keep the rest of the window from arriving.
        if (!(error instanceof MalformedEventError)) throw error;
        result.skipped++;
        log.warn({ requestId: request.requestId, invitee: invitee.uri, err: error }, 'backfilled invitee skipped');
      }
    };

    const events = pages((pageToken) =>
      calendly.listScheduledEvents(token.accessToken, {
        user: calendlyUser,
        minStartTime: windowStart.toISOString(),
        maxStartTime: windowEnd.toISOString(),
        sort: 'start_time:asc',
        count: pageSize,
        pageToken,
      }),
    );
    for await (const eventPage of events) {
      progress?.working();
      for (const event of eventPage) {
        result.events++;
        const invitees = pages((pageToken) =>
          calendly.listEventInvitees(token.accessToken, event.uri, { count: pageSize, pageToken }),
        );
        for await (const inviteePage of invitees) {
          progress?.working();
          for (const invitee of inviteePage) {
            result.invitees++;
            await applyInvitee(event, invitee);
          }
        }
      }
    }
  }
}
