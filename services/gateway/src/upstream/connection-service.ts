import { GrpcStatus, hasCode, type PromiseClient } from '@calsync/service-kit';
import { identityV1, meetingsV1, subscriptionV1, verifyFailureAnswerOf } from '@calsync/proto';
import { callMetadata } from './call-metadata';
import { syncViewOf, type SyncView } from '../connections/sync-state';

type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;
type SubscriptionClient = PromiseClient<typeof subscriptionV1.SubscriptionServiceService>;
type MeetingsClient = PromiseClient<typeof meetingsV1.MeetingsServiceService>;

/** Correlation passed to every call made for one request. */
export interface CallContext {
  requestId: string;
}

/** Every `webhook.state` the user API can show (the OpenAPI document lists the same). */
export const webhookStateNames = ['pending', 'active', 'disabled', 'missing', 'removing', 'failed', 'none'] as const;
export type WebhookStateName = (typeof webhookStateNames)[number];

/** A user's webhook as the user API shows it: no callback id, no key. */
export interface WebhookView {
  state: WebhookStateName;
  events: string[];
  signingKeySource: 'subscription' | 'application' | null;
  createdAt: string | null;
  lastVerifiedAt: string | null;
  lastDeliveryAt: string | null;
  lastError: string | null;
  /**
   * The last delivery to this webhook that was refused, with the `error` the gateway answered
   * (e.g. `signature_mismatch`): deliveries are arriving but failing. Null when none was.
   */
  lastRefusal: { at: string; error: string } | null;
}

/** A user's Calendly connection as the user API shows it: never a token. */
export interface ConnectionView {
  connected: boolean;
  calendlyUserUri: string | null;
  calendlyOrganizationUri: string | null;
  kind: 'oauth' | 'personal_token' | null;
  state: 'active' | 'reauth_required' | null;
  connectedAt: string | null;
  webhook: WebhookView | null;
  /** How the user's meetings are kept in sync; null when not connected. */
  sync: SyncView | null;
}

/** Which step of a connect failed: the credentials (identity) or the webhook (subscription). */
export class ConnectStepFailed extends Error {
  constructor(
    readonly step: 'credentials' | 'webhook',
    cause: unknown,
  ) {
    super(`connect failed at the ${step} step`, { cause });
    this.name = 'ConnectStepFailed';
  }
}

export interface ConnectionService {
  /** Calendly's authorize URL for this user, with its single-use state (kept by identity with PKCE). */
  beginConnect(userId: string, context: CallContext): Promise<{ authorizeUrl: string; state: string; expiresAt: Date }>;
  /** Finishes an OAuth connect for whoever the state was issued to, then makes sure their webhook exists. */
  completeConnect(state: string, code: string, context: CallContext): Promise<{ userId: string }>;
  connectWithToken(userId: string, token: string, context: CallContext): Promise<ConnectionView>;
  describe(userId: string, context: CallContext): Promise<ConnectionView>;
  /**
   * Removes the user's webhooks first (their token is needed at Calendly), then the credentials.
   * With `purge`, every service also forgets the user: subscription (hooks, at Calendly too),
   * identity (tokens), then meetings (meetings, logs and stream messages), so that no delivery
   * or backfill can arrive once meetings has forgotten. Each step is idempotent: retry on failure.
   */
  disconnect(userId: string, context: CallContext, options?: { purge: boolean }): Promise<void>;
}

const notConnected: ConnectionView = {
  connected: false,
  calendlyUserUri: null,
  calendlyOrganizationUri: null,
  kind: null,
  state: null,
  connectedAt: null,
  webhook: null,
  sync: null,
};

/** Connect, inspect and disconnect one platform user's Calendly account, always scoped to that user. */
export function createConnectionService(deps: {
  identity: IdentityClient;
  subscription: SubscriptionClient;
  meetings: MeetingsClient;
  redirectUri: string;
}): ConnectionService {
  const { identity, subscription, meetings } = deps;
  const options = (context: CallContext) => ({ metadata: callMetadata(context) });

  const ensureWebhook = async (userId: string, context: CallContext) => {
    try {
      return (await subscription.ensureUserWebhook({ userId }, options(context))).webhook;
    } catch (error) {
      throw new ConnectStepFailed('webhook', error);
    }
  };

  return {
    async beginConnect(userId, context) {
      const response = await identity.beginConnect({ userId, redirectUri: deps.redirectUri }, options(context));
      if (!response.authorizeUrl || !response.state || !response.expiresAt) {
        throw new Error('identity answered BeginConnect without a URL, state or expiry');
      }
      return { authorizeUrl: response.authorizeUrl, state: response.state, expiresAt: response.expiresAt };
    },

    async completeConnect(state, code, context) {
      let userId: string | undefined;
      try {
        userId = (await identity.completeConnect({ state, code }, options(context))).connection?.userId;
      } catch (error) {
        throw new ConnectStepFailed('credentials', error);
      }
      if (!userId) throw new ConnectStepFailed('credentials', new Error('identity answered without a connection'));
      await ensureWebhook(userId, context);
      return { userId };
    },

    async connectWithToken(userId, token, context) {
      let connection: identityV1.Connection | undefined;
      try {
        connection = (await identity.connectWithPersonalToken({ userId, token }, options(context))).connection;
      } catch (error) {
        throw new ConnectStepFailed('credentials', error);
      }
      await ensureWebhook(userId, context);
      if (!connection) throw new ConnectStepFailed('credentials', new Error('identity answered without a connection'));
      return compose(userId, connection, context);
    },

    async describe(userId, context) {
      // Asked at once: the view needs both, and a user who is not connected is rare here.
      const [connectionAnswer, syncAnswer] = await Promise.allSettled([
        identity.getConnection({ userId }, options(context)),
        subscription.getSyncState({ userId }, options(context)),
      ]);
      if (connectionAnswer.status === 'rejected') {
        if (hasCode(connectionAnswer.reason, GrpcStatus.NOT_FOUND)) return notConnected;
        throw connectionAnswer.reason;
      }
      const { connection } = connectionAnswer.value;
      return connection ? withSyncState(connection, syncAnswer) : notConnected;
    },

    async disconnect(userId, context, disconnectOptions) {
      if (disconnectOptions?.purge) {
        await subscription.purgeUser({ userId }, options(context));
        await identity.purgeUser({ userId }, options(context));
        await meetings.purgeUser({ userId }, options(context));
        return;
      }
      await subscription.removeUserWebhooks({ userId }, options(context));
      await identity.disconnect({ userId }, options(context));
    },
  };

  /** The connection (identity's) with its webhook and sync state (subscription's GetSyncState). */
  async function compose(userId: string, connection: identityV1.Connection, context: CallContext) {
    const [syncAnswer] = await Promise.allSettled([subscription.getSyncState({ userId }, options(context))]);
    return withSyncState(connection, syncAnswer);
  }
}

function withSyncState(
  connection: identityV1.Connection,
  syncAnswer: PromiseSettledResult<subscriptionV1.GetSyncStateResponse>,
): ConnectionView {
  if (syncAnswer.status === 'rejected') {
    // Disconnected between identity's answer and subscription's.
    if (hasCode(syncAnswer.reason, GrpcStatus.NOT_FOUND)) return notConnected;
    throw syncAnswer.reason;
  }
  const { sync, webhook } = syncAnswer.value;
  if (!sync) throw new Error('subscription answered GetSyncState without a sync state');
  return { ...connectionView(connection, webhook), sync: syncViewOf(sync) };
}

const kinds: Partial<Record<identityV1.ConnectionKind, ConnectionView['kind']>> = {
  [identityV1.ConnectionKind.CONNECTION_KIND_OAUTH]: 'oauth',
  [identityV1.ConnectionKind.CONNECTION_KIND_PERSONAL_TOKEN]: 'personal_token',
};
const states: Partial<Record<identityV1.ConnectionState, ConnectionView['state']>> = {
  [identityV1.ConnectionState.CONNECTION_STATE_ACTIVE]: 'active',
  [identityV1.ConnectionState.CONNECTION_STATE_REAUTH_REQUIRED]: 'reauth_required',
};
const webhookStates: Partial<Record<subscriptionV1.WebhookState, WebhookStateName>> = {
  [subscriptionV1.WebhookState.WEBHOOK_STATE_ACTIVE]: 'active',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_DISABLED]: 'disabled',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_MISSING]: 'missing',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_REMOVING]: 'removing',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_FAILED]: 'failed',
  [subscriptionV1.WebhookState.WEBHOOK_STATE_PENDING]: 'pending',
};
const keySources: Partial<Record<subscriptionV1.SigningKeySource, WebhookView['signingKeySource']>> = {
  [subscriptionV1.SigningKeySource.SIGNING_KEY_SOURCE_SUBSCRIPTION]: 'subscription',
  [subscriptionV1.SigningKeySource.SIGNING_KEY_SOURCE_APPLICATION]: 'application',
};

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

/** The user-facing view of a connection and the webhook its sync is judged by (subscription picks it). */
export function connectionView(
  connection: identityV1.Connection | undefined,
  webhook: subscriptionV1.Webhook | undefined,
): ConnectionView {
  if (!connection) return notConnected;
  return {
    connected: true,
    calendlyUserUri: connection.calendlyUserUri || null,
    calendlyOrganizationUri: connection.calendlyOrganizationUri || null,
    kind: kinds[connection.kind] ?? null,
    state: states[connection.state] ?? null,
    connectedAt: iso(connection.connectedAt),
    webhook: webhookView(webhook),
    sync: null,
  };
}

function webhookView(webhook: subscriptionV1.Webhook | undefined): WebhookView {
  if (!webhook) {
    return {
      state: 'none',
      events: [],
      signingKeySource: null,
      createdAt: null,
      lastVerifiedAt: null,
      lastDeliveryAt: null,
      lastError: null,
      lastRefusal: null,
    };
  }
  return {
    state: webhookStates[webhook.state] ?? 'none',
    events: webhook.events,
    signingKeySource: keySources[webhook.signingKeySource] ?? null,
    createdAt: iso(webhook.createdAt),
    lastVerifiedAt: iso(webhook.lastVerifiedAt),
    lastDeliveryAt: iso(webhook.lastDeliveryAt),
    lastError: webhook.lastError || null,
    lastRefusal: webhook.lastRefusedAt
      ? {
          at: webhook.lastRefusedAt.toISOString(),
          error: verifyFailureAnswerOf(webhook.lastRefusal)?.code ?? 'refused',
        }
      : null,
  };
}
