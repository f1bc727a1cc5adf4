import { identityV1, subscriptionV1 } from '@calsync/proto';
import { connectionView } from './connection-service';

const connection = identityV1.Connection.fromPartial({
  userId: 'user-ann',
  calendlyUserUri: 'https://api.calendly.com/users/ann',
  kind: identityV1.ConnectionKind.CONNECTION_KIND_OAUTH,
  state: identityV1.ConnectionState.CONNECTION_STATE_ACTIVE,
});
const webhook = (fields: Partial<subscriptionV1.Webhook>) =>
  subscriptionV1.Webhook.fromPartial({ state: subscriptionV1.WebhookState.WEBHOOK_STATE_ACTIVE, ...fields });

it("shows a webhook's last refused delivery with the error the gateway answered, and null when none was", () => {
  const at = new Date('2026-11-30T10:00:00.000Z');
  expect(
    connectionView(connection, webhook({ lastRefusedAt: at, lastRefusal: 'VERIFY_FAILURE_SIGNATURE_MISMATCH' })).webhook
      ?.lastRefusal,
  ).toEqual({ at: '2026-11-30T10:00:00.000Z', error: 'signature_mismatch' });
  expect(
    connectionView(connection, webhook({ lastRefusedAt: at, lastRefusal: 'VERIFY_FAILURE_TIMESTAMP_STALE' })).webhook
      ?.lastRefusal,
  ).toEqual({ at: '2026-11-30T10:00:00.000Z', error: 'signature_expired' });
  // A reason this gateway does not know yet (a newer subscription) still shows that one was refused.
  expect(
    connectionView(connection, webhook({ lastRefusedAt: at, lastRefusal: 'VERIFY_FAILURE_SOMETHING_NEW' })).webhook
      ?.lastRefusal,
  ).toEqual({ at: '2026-11-30T10:00:00.000Z', error: 'refused' });
  expect(connectionView(connection, webhook({})).webhook?.lastRefusal).toBeNull();
  expect(connectionView(connection, undefined).webhook?.lastRefusal).toBeNull();
});
