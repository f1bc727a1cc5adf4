import { meetingsV1 } from '@calsync/proto';
import { createGrpcClient, type GrpcSecurity, type PromiseClient } from '@calsync/service-kit';
import type { ImportReport } from '../sync-state/sync-state';

/** What subscription asks of meetings: how far a user's newest import has got. */
export interface ImportReports {
  /** meetings' newest import of the user, or undefined when it has none; throws when meetings does not answer. */
  latest(userId: string): Promise<ImportReport | undefined>;
  close(): void;
}

const statuses: Partial<Record<meetingsV1.ImportStatus, ImportReport['status']>> = {
  [meetingsV1.ImportStatus.IMPORT_STATUS_RUNNING]: 'running',
  [meetingsV1.ImportStatus.IMPORT_STATUS_RETRYING]: 'retrying',
  [meetingsV1.ImportStatus.IMPORT_STATUS_COMPLETED]: 'completed',
  [meetingsV1.ImportStatus.IMPORT_STATUS_FAILED]: 'failed',
};

/** Import reports from meetings' GetImportState over gRPC (meetings never calls subscription back). */
export function createMeetingsImportReports(options: {
  address: string;
  security: GrpcSecurity;
  timeoutMs?: number;
}): ImportReports {
  const client: PromiseClient<typeof meetingsV1.MeetingsServiceService> = createGrpcClient(
    meetingsV1.MeetingsServiceService,
    options.address,
    // Short: a sync state answers without the import's progress rather than wait on meetings.
    { security: options.security, defaultTimeoutMs: options.timeoutMs ?? 3_000 },
  );
  return {
    async latest(userId) {
      const found = (await client.getImportState({ userId })).import;
      if (!found) return undefined;
      return {
        requestId: found.requestId,
        status: statuses[found.status] ?? 'running',
        eventsImported: found.eventsImported,
        inviteesImported: found.inviteesImported,
        startedAt: found.startedAt,
        completedAt: found.completedAt,
        pausedUntil: found.pausedUntil,
        error: found.error,
      };
    },
    close: () => client.close(),
  };
}
