import { createInterface } from 'node:readline';
import { createLogger, createPool, createSealer } from '@calsync/service-kit';
import { loadCommandConfig } from '../config';
import { importLegacyWebhooks, legacyRecordSchema, type LegacyRecord } from '../legacy/legacy-webhooks';
import { migrateSchema } from '../migrations';
import { createWebhookRepository } from '../webhooks/webhook-repository';
import { runCommand } from './run-command';

/**
 * `npm run import-legacy-webhooks -w services/subscription < seed-webhooks.jsonl`: one JSON object
 * per line (see legacyRecordSchema). Every line is checked before anything is written, and a bad
 * line is named by its number without echoing it (it may hold a signing key).
 */
async function main(): Promise<number> {
  const config = loadCommandConfig();
  const log = createLogger({ service: 'subscription-import-legacy', level: config.LOG_LEVEL });
  const records: LegacyRecord[] = [];
  const problems: { line: number; problem: string }[] = [];
  let line = 0;
  for await (const text of createInterface({ input: process.stdin })) {
    line += 1;
    if (text.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      problems.push({ line, problem: 'not JSON' });
      continue;
    }
    const parsed = legacyRecordSchema.safeParse(json);
    if (parsed.success) records.push(parsed.data);
    else
      problems.push({ line, problem: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
  }
  if (problems.length > 0) {
    log.error({ problems }, 'nothing imported: fix these lines');
    return 1;
  }
  await migrateSchema(config, log);
  const pool = createPool({ url: config.DATABASE_URL, schema: config.DATABASE_SCHEMA, max: 2, log });
  try {
    const result = await importLegacyWebhooks(
      {
        repository: createWebhookRepository(pool),
        sealer: createSealer({ keys: config.SEALING_KEYS, activeKeyId: config.SEALING_ACTIVE_KEY_ID }),
        publicBaseUrl: config.PUBLIC_BASE_URL,
      },
      records,
    );
    log.info(result, 'legacy webhooks imported');
    return 0;
  } finally {
    await pool.end();
  }
}

runCommand('subscription-import-legacy', main);
