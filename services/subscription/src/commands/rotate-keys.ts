import { createLogger, createPool, createSealer, resealAll } from '@calsync/service-kit';
import { loadCommandConfig } from '../config';
import { sealedTables } from '../webhooks/signing-key-reseal';
import { runCommand } from './run-command';

/**
 * `npm run rotate-keys -w services/subscription`: re-seals every signing key under
 * SEALING_ACTIVE_KEY_ID while the service keeps serving. Exits 1 when something is left under
 * another key (run it again once every replica seals with the new key).
 */
async function main(): Promise<number> {
  const config = loadCommandConfig();
  const log = createLogger({ service: 'subscription-rotate-keys', level: config.LOG_LEVEL });
  const pool = createPool({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, max: 2, log });
  try {
    const sealer = createSealer({ keys: config.SEALING_KEYS, activeKeyId: config.SEALING_ACTIVE_KEY_ID });
    const report = await resealAll({ pool, sealer, log, tables: sealedTables, batchSize: 500 });
    if (report.settled && report.unreadable === 0) {
      log.info({ ...report, activeKeyId: sealer.activeKeyId }, 'every signing key is sealed with the active key');
      return 0;
    }
    log.error({ ...report, activeKeyId: sealer.activeKeyId }, 'some signing keys are still sealed with another key');
    return 1;
  } finally {
    await pool.end();
  }
}

runCommand('subscription-rotate-keys', main);
