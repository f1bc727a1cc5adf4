import { join } from 'node:path';
import { createPool, migrate, type Pool } from '@calsync/service-kit';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { createImportCheckpoints, type ImportCheckpoints } from './import-checkpoints';

const { log } = captureLogger('meetings');
let database: TestDatabase;
let pool: Pool;
let checkpoints: ImportCheckpoints;

beforeAll(async () => {
  database = await createTestDatabase('meetings_import_checkpoints');
  await migrate({ url: database.url, schema: 'meetings', dir: join(__dirname, '..', '..', 'migrations'), log });
  pool = createPool({ url: database.url, schema: 'meetings', log });
  checkpoints = createImportCheckpoints({ pool });
});

afterAll(async () => {
  await pool.end();
  await database.drop();
});

const input = (requestId: string) => ({
  requestId,
  userId: 'user-1',
  kind: 'initial_import' as const,
  windowStart: new Date('2026-11-01T00:00:00Z'),
  windowEnd: new Date('2027-03-01T00:00:00Z'),
});

const eventDone = (eventUri: string) => ({
  pageToken: 'page-2',
  eventUri,
  invitees: 1,
  applied: 1,
  duplicates: 0,
  skipped: 0,
  calendlyRequests: 1,
});

it('gives every run that takes an import up its own id, and only the newest run moves the checkpoint', async () => {
  const first = await checkpoints.begin(input('request-1'));
  const firstRun = { requestId: 'request-1', runId: first.record.runId! };
  expect(await checkpoints.eventDone(firstRun, eventDone('event-1'))).toBe(true);

  // Another run takes the import up (the first lost its lock): the first's writes change nothing.
  const second = await checkpoints.begin(input('request-1'));
  expect(second.resumed).toBe(true);
  expect(second.record.runId).not.toBe(firstRun.runId);
  const secondRun = { requestId: 'request-1', runId: second.record.runId! };
  expect(await checkpoints.eventDone(firstRun, eventDone('event-stale'))).toBe(false);
  expect(await checkpoints.pageStarted(firstRun, 'page-stale', 1)).toBe(false);
  expect(await checkpoints.paused(firstRun, new Date())).toBe(false);
  expect(await checkpoints.completed(firstRun, 1)).toBe(false);
  expect(await checkpoints.failed(firstRun, 'retrying', 'calendly listScheduledEvents failed: 503')).toBe(false);
  expect(await checkpoints.latest('user-1', 'initial_import')).toMatchObject({
    status: 'running',
    lastEventUri: 'event-1',
    pageToken: 'page-2',
    events: 1,
    calendlyRequests: 1,
    pausedUntil: null,
    error: null,
    resumes: 1,
  });
  expect(await checkpoints.failed(secondRun, 'retrying', 'calendly listScheduledEvents failed: 503')).toBe(true);
  expect(await checkpoints.latest('user-1', 'initial_import')).toMatchObject({
    status: 'retrying',
    error: 'calendly listScheduledEvents failed: 503',
  });
  // The next delivery takes it up again as a new run.
  const third = await checkpoints.begin(input('request-1'));
  expect(third.record).toMatchObject({ status: 'running', resumes: 2 });
  const thirdRun = { requestId: 'request-1', runId: third.record.runId! };
  expect(await checkpoints.eventDone(secondRun, eventDone('event-stale'))).toBe(false);

  expect(await checkpoints.eventDone(thirdRun, eventDone('event-2'))).toBe(true);
  expect(await checkpoints.completed(thirdRun, 0)).toBe(true);
  // A completed import keeps its last run's id: beginning it again takes nothing from anyone.
  const again = await checkpoints.begin(input('request-1'));
  expect(again.record).toMatchObject({
    status: 'completed',
    runId: thirdRun.runId,
    events: 2,
    resumes: 2,
    error: null,
  });
});
