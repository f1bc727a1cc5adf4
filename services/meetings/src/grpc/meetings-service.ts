import { meetingsV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  GrpcError,
  GrpcStatus,
  type Callers,
  type Logger,
  type ServiceBinding,
} from '@calsync/service-kit';
import type { ImportCheckpoints, ImportRecord, ImportStatus } from '../backfill/import-checkpoints';
import type { DeliveryLog } from '../deliveries/delivery-log';
import { toDeliveryRecord } from './delivery-proto';
import { CursorError, type ChangeFeed } from '../feed/feed-stream';
import { PurgeRequestInvalid, type UserPurge } from '../purge/user-purge';
import { InvalidQueryError, type MeetingQueries } from '../meetings/meeting-queries';
import { toMeeting } from '../meetings/meeting-proto';

const { MeetingStatus } = meetingsV1;

function statusFilter(status: meetingsV1.MeetingStatus): 'active' | 'canceled' | undefined {
  switch (status) {
    case MeetingStatus.MEETING_STATUS_UNSPECIFIED:
      return undefined;
    case MeetingStatus.MEETING_STATUS_ACTIVE:
      return 'active';
    case MeetingStatus.MEETING_STATUS_CANCELED:
      return 'canceled';
    default:
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'status is not a known meeting status');
  }
}

async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InvalidQueryError || error instanceof PurgeRequestInvalid)
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, error.message);
    throw error;
  }
}

/**
 * Who may call each method, by certificate name: the gateway reads and watches meetings (and the
 * delivery log) for signed-in users; subscription reads a user's import progress for their sync
 * state (the gateway shows it through subscription's GetSyncState); a purge comes from the gateway (the signed-in user asked) or an operator.
 */
export const meetingsCallers: Callers<typeof meetingsV1.MeetingsServiceService> = {
  listMeetings: [grpcIdentities.gateway],
  getMeeting: [grpcIdentities.gateway],
  watchMeetings: [grpcIdentities.gateway],
  getImportState: [grpcIdentities.subscription],
  listDeliveries: [grpcIdentities.gateway],
  purgeUser: [grpcIdentities.gateway, grpcIdentities.operator],
};

const cursorCodes: Record<CursorError['kind'], GrpcStatus> = {
  malformed: GrpcStatus.INVALID_ARGUMENT,
  unknown: GrpcStatus.FAILED_PRECONDITION,
  expired: GrpcStatus.OUT_OF_RANGE,
};

/**
 * MeetingsService over gRPC: a thin adapter onto the queries and the change feed, every call
 * scoped by user_id. Watches end when `closing` aborts (shutdown), so a drain does not wait on them.
 */
export function meetingsGrpcService(deps: {
  queries: MeetingQueries;
  deliveries: DeliveryLog;
  purge: UserPurge;
  feed: ChangeFeed;
  imports: Pick<ImportCheckpoints, 'latest'>;
  closing: AbortSignal;
  log: Logger;
}): ServiceBinding {
  const { queries, feed } = deps;
  return bindService(
    'calsync.meetings.v1.MeetingsService',
    meetingsV1.MeetingsServiceService,
    {
      listMeetings: (request) =>
        answering(async () => {
          const page = await queries.list({
            userId: request.userId,
            from: request.from,
            to: request.to,
            status: statusFilter(request.status),
            pageSize: request.pageSize,
            cursor: request.cursor,
          });
          return { meetings: page.meetings.map(toMeeting), nextCursor: page.nextCursor };
        }),
      getMeeting: (request) =>
        answering(async () => {
          const meeting = await queries.get(request.userId, request.id);
          // Someone else's meeting answers exactly like a missing one.
          if (!meeting) throw new GrpcError(GrpcStatus.NOT_FOUND, 'meeting not found');
          return { meeting: toMeeting(meeting) };
        }),
      async getImportState(request) {
        if (!request.userId) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'user_id is required');
        if (request.userId.length > 200) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'user_id is too long');
        const latest = await deps.imports.latest(request.userId, 'initial_import');
        return { import: latest ? toImport(latest) : undefined };
      },
      listDeliveries: (request) =>
        answering(async () => {
          if (!request.userId) throw new InvalidQueryError('user_id is required');
          const page = await deps.deliveries.list({
            userId: request.userId,
            pageSize: request.pageSize,
            cursor: request.cursor,
          });
          return { deliveries: page.deliveries.map(toDeliveryRecord), nextCursor: page.nextCursor };
        }),
      purgeUser: (request) => answering(() => deps.purge.purge(request.userId)),
      async watchMeetings(request, stream) {
        if (request.allUsers && request.userId)
          throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'give user_id or all_users, not both');
        if (!request.allUsers && !request.userId)
          throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'user_id is required (or all_users for every user)');
        if (request.userId.length > 200) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'user_id is too long');
        const signal = AbortSignal.any([stream.signal, deps.closing]);
        try {
          for await (const entry of feed.watch({
            userId: request.allUsers ? undefined : request.userId,
            resumeFrom: request.resumeFrom,
            signal,
          })) {
            await stream.write({
              cursor: entry.cursor,
              change: entry.message ? meetingsV1.MeetingChanged.decode(entry.message) : undefined,
            });
          }
        } catch (error) {
          if (error instanceof CursorError) throw new GrpcError(cursorCodes[error.kind], error.message);
          if (signal.aborted) return;
          throw error;
        }
        if (deps.closing.aborted)
          throw new GrpcError(GrpcStatus.UNAVAILABLE, 'the service is shutting down; resume elsewhere');
      },
    },
    meetingsCallers,
    deps.log,
  );
}

const importStatuses: Record<ImportStatus, meetingsV1.ImportStatus> = {
  running: meetingsV1.ImportStatus.IMPORT_STATUS_RUNNING,
  retrying: meetingsV1.ImportStatus.IMPORT_STATUS_RETRYING,
  completed: meetingsV1.ImportStatus.IMPORT_STATUS_COMPLETED,
  failed: meetingsV1.ImportStatus.IMPORT_STATUS_FAILED,
};

function toImport(record: ImportRecord): meetingsV1.Import {
  return {
    requestId: record.requestId,
    status: importStatuses[record.status],
    eventsImported: record.events,
    inviteesImported: record.invitees,
    startedAt: record.startedAt,
    updatedAt: record.updatedAt,
    completedAt: record.completedAt ?? undefined,
    error: record.error ?? '',
    pausedUntil: record.pausedUntil ?? undefined,
    resumes: record.resumes,
    calendlyRequests: record.calendlyRequests,
  };
}
