import { pageSizeOf, type PageSizeBounds } from '@calsync/service-kit';
import { syncModeNames, type SyncModeName, type SyncModeRepository } from '../polling/sync-mode-repository';
import type { WebhookRepository, WebhookRow, WebhookState } from '../webhooks/webhook-repository';

export const hookStates: readonly WebhookState[] = ['pending', 'active', 'disabled', 'missing', 'removing', 'failed'];

/** A page query that cannot be answered as asked; the message names what is wrong. */
export class FleetQueryInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetQueryInvalid';
  }
}

export interface HookPageQuery {
  state?: WebhookState;
  userId?: string;
  /** Only hooks of users synced this way (polling: their refused attempts, with Calendly's refusal). */
  syncMode?: SyncModeName;
  /** 1..500; undefined means 100. */
  pageSize?: number;
  /** The previous page's nextCursor. */
  cursor?: string;
}

/** Every user's hooks at once, for operators: never on a user's request path. */
export interface HookFleet {
  /** One page in hook id order; throws FleetQueryInvalid for a bad page size, cursor or user id. */
  list(query: HookPageQuery): Promise<{ hooks: WebhookRow[]; nextCursor: string }>;
  /** Hooks per state, every state present (zero when none). */
  count(): Promise<Map<WebhookState, number>>;
  /** Users by how their meetings reach calsync, every mode present (zero when none). */
  countSyncModes(): Promise<Map<SyncModeName, number>>;
}

const pageBounds: PageSizeBounds = { defaultSize: 100, maxSize: 500 };
// Cursors are hook ids, which the schema keeps to this alphabet and length.
const cursorPattern = /^[A-Za-z0-9_-]{1,64}$/;

export function createHookFleet(deps: { repository: WebhookRepository; syncModes: SyncModeRepository }): HookFleet {
  return {
    async list(query) {
      const pageSize = pageSizeOf(query.pageSize, pageBounds, (message) => new FleetQueryInvalid(message));
      const cursor = query.cursor ?? '';
      if (cursor && !cursorPattern.test(cursor)) throw new FleetQueryInvalid('cursor is not one this API returned');
      if (query.userId !== undefined && (query.userId.length === 0 || query.userId.length > 200))
        throw new FleetQueryInvalid('user_id must be 1 to 200 characters');
      // One more than asked tells whether another page follows without a count.
      const rows = await deps.repository.listPage(cursor, pageSize + 1, {
        ...(query.state ? { state: query.state } : {}),
        ...(query.userId !== undefined ? { userId: query.userId } : {}),
        ...(query.syncMode ? { syncMode: query.syncMode } : {}),
      });
      const hooks = rows.slice(0, pageSize);
      return { hooks, nextCursor: rows.length > pageSize ? hooks[hooks.length - 1]!.hookId : '' };
    },
    async count() {
      const counted = await deps.repository.countByState();
      return new Map(hookStates.map((state) => [state, counted.get(state) ?? 0]));
    },
    async countSyncModes() {
      const counted = await deps.syncModes.countByMode();
      return new Map(syncModeNames.map((mode) => [mode, counted.get(mode) ?? 0]));
    },
  };
}
