import { join } from 'node:path';
import { schemaMigrator } from '@calsync/service-kit';

/** Applies subscription's SQL migrations (node-pg-migrate format) to its schema: at start, alone with MIGRATE_ONLY and before the commands. */
export const migrateSchema = schemaMigrator(join(__dirname, '..', 'migrations'));
