import { join } from 'node:path';

/** The service's SQL migrations (node-pg-migrate format), applied at start and by the commands. */
export const migrationsDir = join(__dirname, '..', 'migrations');
