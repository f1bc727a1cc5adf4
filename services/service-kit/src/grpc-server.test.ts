import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { meetingsV1 } from '@calsync/proto';
import { GrpcError, reasonOf } from './errors';
import { createGrpcClient } from './grpc-client';
import { bindService, createGrpcServer, livenessHealthName, type GrpcServer } from './grpc-server';
import { createMetricsRegistry } from './metrics';
import { createPool } from './postgres';
import { captureLogger } from './testing/log-capture';
import { eventually } from './testing/polling';
import { reflectedServices } from './testing/reflection';

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');
type HealthStatus = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN';

function checkHealth(port: number, serviceName = ''): Promise<HealthStatus> {
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (value: { service: string }) => healthService.Check!.requestSerialize(value),
      (bytes: Buffer) => healthService.Check!.responseDeserialize(bytes) as { status: HealthStatus },
      { service: serviceName },
      { deadline: Date.now() + 2_000 },
      (error, response) => {
        client.close();
        if (error) reject(error);
        else resolve(response!.status);
      },
    );
  });
}

describe('createGrpcServer', () => {
  const { log, lines } = captureLogger('kit-grpc');
  const registry = createMetricsRegistry('kit-grpc');
  let server: GrpcServer;
  let port: number;
  let releaseSlowCall: () => void = () => undefined;
  let slowCallArrived = false;
  // Nothing listens on port 1: every query is refused, as while Postgres is down.
  const unreachable = createPool({ url: 'postgres://postgres@127.0.0.1:1/none', schema: 'none', log });
  let watchCancelled = false;

  beforeAll(async () => {
    const binding = bindService(
      'calsync.meetings.v1.MeetingsService',
      meetingsV1.MeetingsServiceService,
      {
        async getMeeting(request) {
          if (request.id === 'slow') {
            slowCallArrived = true;
            await new Promise<void>((resolve) => (releaseSlowCall = resolve));
          }
          if (request.id === 'missing')
            throw new GrpcError(grpc.status.NOT_FOUND, 'no such meeting', 'MEETING_NOT_FOUND');
          if (request.id === 'crash') throw new Error('database password is hunter2');
          if (request.id === 'database-down') await unreachable.query('SELECT 1');
          return { meeting: { ...meetingsV1.Meeting.fromPartial({ id: request.id, userId: request.userId }) } };
        },
        async listMeetings() {
          return { meetings: [], nextCursor: '' };
        },
        async watchMeetings(request, stream) {
          if (request.resumeFrom === 'bad') throw new GrpcError(grpc.status.OUT_OF_RANGE, 'cursor expired; re-list');
          for (let n = 1; n <= 3; n++) await stream.write({ cursor: `${request.userId}:${n}` });
          if (request.allUsers) {
            // Streams until the caller goes away.
            await new Promise<void>((resolve) => stream.signal.addEventListener('abort', () => resolve()));
            watchCancelled = true;
          }
        },
      },
      log,
    );
    server = createGrpcServer({
      services: [binding],
      host: '127.0.0.1',
      port: 0,
      log,
      registry,
      shutdownTimeoutMs: 5_000,
      shutdownDelayMs: 300,
    });
    port = await server.start();
  });

  afterAll(async () => {
    releaseSlowCall();
    await server.stop();
    await unreachable.end();
  });

  const client = () => createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`);

  it('answers NOT_SERVING until its dependencies are up', async () => {
    expect(await checkHealth(port)).toBe('NOT_SERVING');
    expect(await checkHealth(port, 'calsync.meetings.v1.MeetingsService')).toBe('NOT_SERVING');
    expect(await checkHealth(port, livenessHealthName)).toBe('SERVING');
    server.setServing(true);
    expect(await checkHealth(port)).toBe('SERVING');
    expect(await checkHealth(port, 'calsync.meetings.v1.MeetingsService')).toBe('SERVING');
  });

  it('serves calls, maps GrpcError to its status and reason, and hides unexpected errors', async () => {
    const meetings = client();
    try {
      const response = await meetings.getMeeting({ userId: 'u1', id: 'm1' });
      expect(response.meeting?.id).toBe('m1');
      const missing = await meetings.getMeeting({ userId: 'u1', id: 'missing' }).catch((error: unknown) => error);
      expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
      expect((missing as grpc.ServiceError).details).toBe('no such meeting');
      expect(reasonOf(missing)).toBe('MEETING_NOT_FOUND');
      const crash = await meetings.getMeeting({ userId: 'u1', id: 'crash' }).catch((error: unknown) => error);
      expect((crash as grpc.ServiceError).code).toBe(grpc.status.INTERNAL);
      expect((crash as grpc.ServiceError).details).not.toContain('hunter2');
      const down = await meetings.getMeeting({ userId: 'u1', id: 'database-down' }).catch((error: unknown) => error);
      expect((down as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      meetings.close();
    }
    const metrics = await registry.getSingleMetricAsString('grpc_server_handled_total');
    expect(metrics).toContain('method="/calsync.meetings.v1.MeetingsService/GetMeeting",code="NOT_FOUND"');
    expect(lines.some((line) => line.includes('"code":"NOT_FOUND"'))).toBe(true);
  });

  it('streams server-streaming responses, ends with the thrown status, and sees a caller cancel', async () => {
    const meetings = client();
    try {
      const cursors: string[] = [];
      for await (const response of meetings.watchMeetings({ userId: 'u1', allUsers: false, resumeFrom: '' }))
        cursors.push(response.cursor);
      expect(cursors).toEqual(['u1:1', 'u1:2', 'u1:3']);

      const failing = async () => {
        for await (const _ of meetings.watchMeetings({ userId: 'u1', allUsers: false, resumeFrom: 'bad' })) void _;
      };
      await expect(failing()).rejects.toMatchObject({
        code: grpc.status.OUT_OF_RANGE,
        details: 'cursor expired; re-list',
      });

      const cancel = new AbortController();
      const seen: string[] = [];
      const endless = async () => {
        for await (const response of meetings.watchMeetings(
          { userId: 'u2', allUsers: true, resumeFrom: '' },
          { signal: cancel.signal },
        )) {
          seen.push(response.cursor);
          if (seen.length === 3) cancel.abort();
        }
      };
      await expect(endless()).rejects.toMatchObject({ code: grpc.status.CANCELLED });
      expect(seen).toEqual(['u2:1', 'u2:2', 'u2:3']);
      await eventually(() => expect(watchCancelled).toBe(true));
    } finally {
      meetings.close();
    }
  });

  it('lists only its own services and health in reflection', async () => {
    expect(await reflectedServices(`127.0.0.1:${port}`)).toEqual([
      'calsync.meetings.v1.MeetingsService',
      'grpc.health.v1.Health',
    ]);
  });

  it('turns NOT_SERVING from the first moment of shutdown while in-flight calls finish', async () => {
    const meetings = client();
    const slow = meetings.getMeeting({ userId: 'u1', id: 'slow' });
    // Shutdown starts only once the call is in the handler, so it really is in flight.
    await eventually(() => expect(slowCallArrived).toBe(true));
    const stopped = server.stop();
    expect(await checkHealth(port)).toBe('NOT_SERVING');
    expect(await checkHealth(port, livenessHealthName)).toBe('SERVING');
    releaseSlowCall();
    await expect(slow).resolves.toMatchObject({ meeting: { id: 'slow' } });
    await stopped;
    meetings.close();
  });
});
