import { createLogger, createPool, createSealer, resealAll } from '@calsync/service-kit';
import { loadIdentityConfig } from './config';
import { sealedTables } from './rotation/reseal';

/**
 * `npm run rotate-keys -w services/identity`: re-seals every stored secret under
 * SEALING_ACTIVE_KEY_ID while the service keeps serving. Exits 1 when something is left under
 * another key (a replica not yet running with the new active key, or an unreadable value).
 */
async function main(): Promise<number> {
  const config = loadIdentityConfig();
  const log = createLogger({ service: 'identity-rotate-keys', level: config.LOG_LEVEL });
  const pool = createPool({
    url: config.DATABASE_URL,
    schema: config.DATABASE_SCHEMA,
    max: 2,
    applicationName: 'identity-rotate-keys',
    log,
  });
  try {
    const sealer = createSealer({ keys: config.SEALING_KEYS, activeKeyId: config.SEALING_ACTIVE_KEY_ID });
    const report = await resealAll({ pool, sealer, log, tables: sealedTables, batchSize: config.ROTATE_BATCH_SIZE });
    if (report.settled && report.unreadable === 0) {
      log.info({ ...report, activeKeyId: sealer.activeKeyId }, 'every secret is sealed with the active key');
      return 0;
    }
    log.error({ ...report, activeKeyId: sealer.activeKeyId }, 'some secrets are still sealed with another key');
    return 1;
  } finally {
    await pool.end();
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`rotate-keys failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
