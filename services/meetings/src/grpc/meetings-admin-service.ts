import { meetingsAdminV1 } from '@calsync/proto';
import {
  bindService,
  grpcIdentities,
  GrpcError,
  GrpcStatus,
  type Callers,
  type Logger,
  type ServiceBinding,
} from '@calsync/service-kit';
import { DeadLetterQueryInvalid, type DeadLetterReplay } from '../consumer/dead-letter-replay';
import type { DeliveryLog } from '../deliveries/delivery-log';
import { toDeliveryRecord } from './delivery-proto';
import { InvalidQueryError } from '../meetings/meeting-queries';

/** Who may call each method, by certificate name: operators, through the calsync CLI; never a user's path. */
export const meetingsAdminCallers: Callers<typeof meetingsAdminV1.MeetingsAdminServiceService> = {
  listDeadLetters: [grpcIdentities.operator],
  replayDeadLetters: [grpcIdentities.operator],
  listDeliveryLog: [grpcIdentities.operator],
};

function toGrpcError(error: unknown): GrpcError | undefined {
  if (error instanceof DeadLetterQueryInvalid || error instanceof InvalidQueryError)
    return new GrpcError(GrpcStatus.INVALID_ARGUMENT, error.message);
  return undefined;
}

const userIdOf = (userId: string) => {
  if (userId.length > 200) throw new DeadLetterQueryInvalid('user_id must be at most 200 characters');
  return userId || undefined;
};

/**
 * The operators' view of dead letters. A service of its own beside MeetingsService, so that
 * per-method authorization can allow it to the operator identity alone; no gateway route reaches it.
 */
export function meetingsAdminGrpcService(deps: {
  deadLetters: DeadLetterReplay;
  deliveries: DeliveryLog;
  log: Logger;
}): ServiceBinding {
  return bindService(
    'calsync.meetings.v1.MeetingsAdminService',
    meetingsAdminV1.MeetingsAdminServiceService,
    {
      async listDeadLetters(request) {
        const userId = userIdOf(request.userId);
        const page = await deps.deadLetters.list({
          ...(request.pageSize !== 0 ? { pageSize: request.pageSize } : {}),
          ...(request.cursor ? { cursor: request.cursor } : {}),
          ...(userId ? { userId } : {}),
        });
        return { deadLetters: page.deadLetters, nextCursor: page.nextCursor };
      },
      async replayDeadLetters(request) {
        const userId = userIdOf(request.userId);
        if (request.sequences.length > 0) {
          if (userId || request.all)
            throw new DeadLetterQueryInvalid('give either sequences, or user_id, or all: not several');
          return deps.deadLetters.replay({ sequences: request.sequences });
        }
        if (!userId && !request.all)
          throw new DeadLetterQueryInvalid('name sequences or a user_id, or set all to replay every dead letter');
        if (userId && request.all) throw new DeadLetterQueryInvalid('give either user_id or all: not both');
        return deps.deadLetters.replay(userId ? { userId } : {});
      },
      async listDeliveryLog(request) {
        const page = await deps.deliveries.list({
          ...(request.userId ? { userId: request.userId } : {}),
          pageSize: request.pageSize,
          cursor: request.cursor,
        });
        return { deliveries: page.deliveries.map(toDeliveryRecord), nextCursor: page.nextCursor };
      },
    },
    meetingsAdminCallers,
    deps.log,
    { toGrpcError },
  );
}
