import { createCalendlyClient } from '@calsync/calendly-client';
import { calendlyClientOptionsOf, createLogger, createPool, grpcSecurityOf } from '@calsync/service-kit';
import { loadCommandConfig } from '../config';
import { createIdentityConnections } from '../upstream/identity-connections';
import { retireLegacyWebhooks } from '../legacy/legacy-webhooks';
import { migrateSchema } from '../migrations';
import { createWebhookRepository } from '../webhooks/webhook-repository';
import { runCommand } from './run-command';

/**
 * `npm run retire-legacy-webhook -w services/subscription`: deletes the seed's subscriptions on
 * the single URL once every user has their own. Exit 0 when done, 2 while users still wait for
 * their own webhook (nothing is deleted), 1 when some deletion failed (run it again).
 */
async function main(): Promise<number> {
  const config = loadCommandConfig();
  const log = createLogger({ service: 'subscription-retire-legacy', level: config.LOG_LEVEL });
  await migrateSchema(config, log);
  const pool = createPool({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, max: 2, log });
  const connections = createIdentityConnections({ address: config.IDENTITY_ADDR, security: grpcSecurityOf(config) });
  try {
    const result = await retireLegacyWebhooks({
      repository: createWebhookRepository(pool),
      connections,
      calendly: createCalendlyClient({
        apiUrl: config.CALENDLY_API_URL,
        authUrl: config.CALENDLY_AUTH_URL,
        ...calendlyClientOptionsOf(config),
        log,
      }),
      log,
    });
    if (result.status === 'waiting') {
      log.warn(
        { usersWithoutOwnWebhook: result.usersWithoutOwnWebhook },
        'not retiring: some users have no active webhook of their own yet (run Reconcile or EnsureUserWebhook first)',
      );
      return 2;
    }
    log.info({ deleted: result.deleted, failed: result.failed }, 'legacy webhooks retired');
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    connections.close();
    await pool.end();
  }
}

runCommand('subscription-retire-legacy', main);
