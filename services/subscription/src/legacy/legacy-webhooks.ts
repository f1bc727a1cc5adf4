import { z } from 'zod';
import type { Logger, Sealer } from '@calsync/service-kit';
import type { CalendlyWebhooks } from '../subscriptions/subscriptions';
import type { Connections } from '../upstream/identity-connections';
import { signingKeyContext } from '../webhooks/hook-loader';
import type { WebhookRepository } from '../webhooks/webhook-repository';
import { legacyCallbackPath, newHookId } from '../webhooks/webhook-secrets';

/** One subscription the seed made on its single URL, as exported from the seed's database. */
export const legacyRecordSchema = z
  .object({
    user_id: z.string().min(1).max(200),
    /** The subscription's creator: deliveries carry it as created_by. */
    calendly_user_uri: z.url(),
    calendly_organization_uri: z.url(),
    calendly_subscription_uri: z.url(),
    scope: z.enum(['user', 'organization']),
    events: z.array(z.string().min(1)).min(1),
    /** Absent when the OAuth application key signs its deliveries. */
    signing_key: z.string().min(1).optional(),
  })
  .strict();

export type LegacyRecord = z.infer<typeof legacyRecordSchema>;

/**
 * Records the seed's subscriptions so the legacy URL keeps verifying them: each found by its
 * creator through an index, its key sealed like any other. Re-importing a creator is skipped.
 */
export async function importLegacyWebhooks(
  deps: { repository: WebhookRepository; sealer: Sealer; publicBaseUrl: string },
  records: LegacyRecord[],
): Promise<{ imported: number; skipped: number }> {
  let imported = 0;
  let skipped = 0;
  for (const record of records) {
    if (await deps.repository.findLegacyByCreator(record.calendly_user_uri)) {
      skipped += 1;
      continue;
    }
    const hookId = newHookId();
    await deps.repository.insert({
      hookId,
      userId: record.user_id,
      calendlyUserUri: record.calendly_user_uri,
      calendlyOrganizationUri: record.calendly_organization_uri,
      calendlySubscriptionUri: record.calendly_subscription_uri,
      callbackUrl: `${deps.publicBaseUrl}${legacyCallbackPath}`,
      events: record.events,
      scope: record.scope,
      legacy: true,
      state: 'active',
      signingKeySource: record.signing_key ? 'subscription' : 'application',
      signingKeySealed: record.signing_key ? deps.sealer.seal(record.signing_key, signingKeyContext(hookId)) : null,
    });
    imported += 1;
  }
  return { imported, skipped };
}

export type RetireResult =
  | { status: 'waiting'; usersWithoutOwnWebhook: string[] }
  | { status: 'retired'; deleted: number; failed: { subscription: string; error: string }[] };

/**
 * Deletes the seed's subscriptions on the single URL (the organization-scoped one above all),
 * but only once every user we know has an active per-user webhook: until then the legacy URL
 * may be the only way their meetings arrive.
 */
export async function retireLegacyWebhooks(deps: {
  repository: WebhookRepository;
  connections: Connections;
  calendly: CalendlyWebhooks;
  log: Logger;
}): Promise<RetireResult> {
  const waiting = await deps.repository.usersWithoutActiveHook(50);
  if (waiting.length > 0) return { status: 'waiting', usersWithoutOwnWebhook: waiting };
  let deleted = 0;
  const failed: { subscription: string; error: string }[] = [];
  for (const row of await deps.repository.listLegacy()) {
    const subscription = row.calendlySubscriptionUri ?? row.hookId;
    try {
      if (row.calendlySubscriptionUri) {
        // Its creator's token: only they (or an admin) may delete an organization-scoped
        // subscription. Nobody else's is tried: Calendly answers 404 to a member who may not see
        // it, which would pass for "already deleted" while it still delivers.
        const grant = await deps.connections.grantFor(row.userId).catch((error: unknown) => {
          throw new Error(
            `its creator ${row.userId} has no working Calendly connection (${error instanceof Error ? error.message : String(error)}); reconnect them, or delete it in Calendly, then run again`,
          );
        });
        await deps.calendly.deleteWebhookSubscription(grant.accessToken, row.calendlySubscriptionUri);
      }
      await deps.repository.delete([row.hookId]);
      deleted += 1;
      deps.log.info({ subscription, scope: row.scope }, 'legacy webhook retired');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failed.push({ subscription, error: message });
      deps.log.warn({ subscription, error: message }, 'could not retire a legacy webhook');
    }
  }
  return { status: 'retired', deleted, failed };
}
