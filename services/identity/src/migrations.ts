import { join } from 'node:path';
import { schemaMigrator } from '@calsync/service-kit';

/** Applies identity's SQL migrations (node-pg-migrate format) to its schema: at start, alone with MIGRATE_ONLY. */
export const migrateSchema = schemaMigrator(join(__dirname, '..', 'migrations'));
