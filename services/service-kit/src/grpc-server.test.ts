import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, TLSSocket, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { meetingsV1 } from '@calsync/proto';
import { GrpcError, grpcStatusOfHttpFailure, reasonOf } from './errors';
import { createGrpcClient } from './grpc-client';
import { bindService, createGrpcServer, livenessHealthName, type GrpcServer, type ServiceBinding } from './grpc-server';
import { channelCredentials, grpcIdentities, type GrpcSecurity } from './grpc-security';
import { createMetricsRegistry } from './metrics';
import { createPool } from './postgres';
import { createThrowawayCa, testGrpcCa, testGrpcSecurity, type ThrowawayCa } from './testing/certificates';
import { grpcHealth } from './testing/health';
import { captureLogger } from './testing/log-capture';
import { eventually } from './testing/polling';
import { reflectedServices } from './testing/reflection';

const meetingsServer = grpcIdentities.meetings;
const checkHealth = (port: number, service = '') => grpcHealth(`127.0.0.1:${port}`, meetingsServer, service);

/** A meetings service whose GetMeeting only the gateway may call, and ListMeetings the gateway and operators. */
function meetingsBinding(log: Parameters<typeof bindService>[4]): ServiceBinding {
  return bindService(
    'calsync.meetings.v1.MeetingsService',
    meetingsV1.MeetingsServiceService,
    {
      async getMeeting(request) {
        return { meeting: { ...meetingsV1.Meeting.fromPartial({ id: request.id, userId: request.userId }) } };
      },
      async listMeetings() {
        return { meetings: [], nextCursor: '' };
      },
      async watchMeetings() {},
      async getImportState() {
        return {};
      },
      async listDeliveries() {
        return { deliveries: [], nextCursor: '' };
      },
      async purgeUser() {
        return { rowsDeleted: 0, messagesDeleted: 0 };
      },
    },
    {
      getMeeting: [grpcIdentities.gateway],
      listMeetings: [grpcIdentities.gateway, grpcIdentities.operator],
      watchMeetings: [grpcIdentities.gateway],
      getImportState: [grpcIdentities.gateway],
      listDeliveries: [grpcIdentities.gateway],
      purgeUser: [grpcIdentities.gateway],
    },
    log,
  );
}

async function startServer(security: GrpcSecurity, binding: ServiceBinding, registry = createMetricsRegistry('kit')) {
  const server = createGrpcServer({
    services: [binding],
    host: '127.0.0.1',
    port: 0,
    security,
    log: captureLogger('kit-grpc').log,
    registry,
    shutdownTimeoutMs: 5_000,
    shutdownDelayMs: 300,
  });
  return { server, port: await server.start() };
}

function failure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  return call.then(
    () => {
      throw new Error('the call succeeded');
    },
    (error: grpc.ServiceError) => error,
  );
}

/** The certificate a fresh TLS connection to `port` is shown. */
function servedCertificate(port: number, ca: ThrowawayCa, security: Extract<GrpcSecurity, { mode: 'mtls' }>) {
  return new Promise<PeerCertificate>((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(ca.caFile),
      cert: readFileSync(security.certFile),
      key: readFileSync(security.keyFile),
      ALPNProtocols: ['h2'],
      servername: meetingsServer,
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once('error', reject);
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
        async getImportState() {
          return {};
        },
        async listDeliveries() {
          return { deliveries: [], nextCursor: '' };
        },
        async purgeUser() {
          return { rowsDeleted: 0, messagesDeleted: 0 };
        },
      },
      {
        getMeeting: [grpcIdentities.gateway],
        listMeetings: [grpcIdentities.gateway, grpcIdentities.operator],
        watchMeetings: [grpcIdentities.gateway],
        getImportState: [grpcIdentities.gateway],
        listDeliveries: [grpcIdentities.gateway],
        purgeUser: [grpcIdentities.gateway],
      },
      log,
    );
    server = createGrpcServer({
      services: [binding],
      host: '127.0.0.1',
      port: 0,
      security: await testGrpcSecurity(meetingsServer),
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

  const clientAs = async (identity: string) =>
    createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`, {
      security: await testGrpcSecurity(identity),
    });
  const client = () => clientAs(grpcIdentities.gateway);

  it('answers NOT_SERVING until its dependencies are up', async () => {
    expect(await checkHealth(port)).toBe('NOT_SERVING');
    expect(await checkHealth(port, 'calsync.meetings.v1.MeetingsService')).toBe('NOT_SERVING');
    expect(await checkHealth(port, livenessHealthName)).toBe('SERVING');
    server.setServing(true);
    expect(await checkHealth(port)).toBe('SERVING');
    expect(await checkHealth(port, 'calsync.meetings.v1.MeetingsService')).toBe('SERVING');
  });

  it('serves calls, maps GrpcError to its status and reason, and hides unexpected errors', async () => {
    const meetings = await client();
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
    const meetings = await client();
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
    const credentials = channelCredentials(await testGrpcSecurity(), meetingsServer);
    expect(await reflectedServices(`127.0.0.1:${port}`, credentials)).toEqual([
      'calsync.meetings.v1.MeetingsService',
      'grpc.health.v1.Health',
    ]);
  });

  it('refuses a caller without a certificate with UNAUTHENTICATED, before any handler runs', async () => {
    const handlerFailures = () => lines.filter((line) => line.includes('handler failed')).length;
    const failuresBefore = handlerFailures();
    const Client = grpc.makeGenericClientConstructor(meetingsV1.MeetingsServiceService, 'MeetingsService');
    const anonymous = new Client(`127.0.0.1:${port}`, (await testGrpcCa()).withoutCertificate(meetingsServer));
    try {
      const refused = await new Promise<grpc.ServiceError>((resolve) =>
        anonymous.getMeeting({ userId: 'u1', id: 'crash' }, (error: grpc.ServiceError) => resolve(error)),
      );
      expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(refused.details).toBe('a client certificate signed by the calsync CA is required');
    } finally {
      anonymous.close();
    }
    expect(handlerFailures()).toBe(failuresBefore);
  });

  it("reads a caller's certificate once per connection, not on every call", async () => {
    const meetings = await client();
    const peerCertificates = jest.spyOn(TLSSocket.prototype, 'getPeerCertificate');
    const onServer = () =>
      peerCertificates.mock.contexts.filter(
        (socket) => (socket as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer,
      ).length;
    try {
      for (let n = 0; n < 5; n++) await meetings.getMeeting({ userId: 'u1', id: `m${n}` });
      // One read when these calls opened the connection, none when an earlier test had.
      expect(onServer()).toBeLessThanOrEqual(1);
      const asOperator = await clientAs(grpcIdentities.operator);
      try {
        // A new connection is authorized by its own certificate.
        expect((await failure(asOperator.getMeeting({ userId: 'u1', id: 'm1' }))).code).toBe(
          grpc.status.PERMISSION_DENIED,
        );
      } finally {
        asOperator.close();
      }
    } finally {
      peerCertificates.mockRestore();
      meetings.close();
    }
  });

  it('refuses a certificate from another CA with UNAUTHENTICATED', async () => {
    const strangers = await createThrowawayCa();
    const stranger = await strangers.files(grpcIdentities.gateway);
    // The stranger trusts our server too, so only its own certificate is in question.
    const trusted = join(strangers.dir, 'both.crt');
    writeFileSync(trusted, Buffer.concat([readFileSync((await testGrpcCa()).caFile), readFileSync(stranger.caFile)]));
    const meetings = createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`, {
      security: { mode: 'mtls', reloadIntervalMs: 1_000, ...stranger, caFile: trusted },
    });
    try {
      expect((await failure(meetings.getMeeting({ userId: 'u1', id: 'm1' }))).code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      meetings.close();
      strangers.remove();
    }
  });

  it('refuses a calsync certificate the method does not allow with PERMISSION_DENIED', async () => {
    const asSubscription = await clientAs(grpcIdentities.subscription);
    const asOperator = await clientAs(grpcIdentities.operator);
    try {
      const denied = await failure(asSubscription.getMeeting({ userId: 'u1', id: 'crash' }));
      expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(denied.details).toBe('calsync-subscription may not call /calsync.meetings.v1.MeetingsService/GetMeeting');
      expect((await failure(asOperator.getMeeting({ userId: 'u1', id: 'm1' }))).code).toBe(
        grpc.status.PERMISSION_DENIED,
      );
      await expect(
        asOperator.listMeetings(meetingsV1.ListMeetingsRequest.fromPartial({ userId: 'u1' })),
      ).resolves.toEqual({
        meetings: [],
        nextCursor: '',
      });
    } finally {
      asSubscription.close();
      asOperator.close();
    }
    const metrics = await registry.getSingleMetricAsString('grpc_server_handled_total');
    expect(metrics).toContain('method="/calsync.meetings.v1.MeetingsService/GetMeeting",code="PERMISSION_DENIED"');
  });

  it('is not trusted by a client that expects another service', async () => {
    const wrongServer = createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`, {
      security: await testGrpcSecurity(),
      server: grpcIdentities.identity,
    });
    try {
      expect((await failure(wrongServer.getMeeting({ userId: 'u1', id: 'm1' }, { timeoutMs: 1_000 }))).code).toBe(
        grpc.status.UNAVAILABLE,
      );
    } finally {
      wrongServer.close();
    }
  });

  it('turns NOT_SERVING from the first moment of shutdown while in-flight calls finish', async () => {
    const meetings = await client();
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

describe('a server whose port is taken', () => {
  it('rejects its start and leaves nothing behind that keeps the process alive', async () => {
    // grpc-js starts watching the certificate files for a bind and, when the bind fails, never
    // stops: a process (a test file, a service retrying its start) would then never exit.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const takenPort = (taken.address() as { port: number }).port;
    const kit = join(__dirname, '..', 'dist', 'index.js');
    const script = `
      const kit = require(${JSON.stringify(kit)});
      const server = kit.createGrpcServer({
        services: [], host: '127.0.0.1', port: ${takenPort},
        security: ${JSON.stringify(await testGrpcSecurity(meetingsServer))},
        log: require('pino')({ level: 'silent' }), registry: kit.createMetricsRegistry('bind-test'),
        shutdownTimeoutMs: 1000,
      });
      server.start().then(() => process.exit(3), () => console.log('start rejected'));`;
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
        cwd: join(__dirname, '..'),
        timeout: 20_000,
      });
      expect(stdout).toContain('start rejected');
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});

describe('certificate rotation', () => {
  it('serves and trusts rotated certificates without a restart', async () => {
    const ca = await createThrowawayCa({ reloadIntervalMs: 100 });
    const { log } = captureLogger('kit-rotation');
    const serverSecurity = (await ca.security(meetingsServer)) as Extract<GrpcSecurity, { mode: 'mtls' }>;
    const gatewaySecurity = (await ca.security(grpcIdentities.gateway)) as Extract<GrpcSecurity, { mode: 'mtls' }>;
    const { server, port } = await startServer(serverSecurity, meetingsBinding(log));
    const meetings = createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`, {
      security: gatewaySecurity,
    });
    try {
      const before = await servedCertificate(port, ca, gatewaySecurity);
      await expect(meetings.getMeeting({ userId: 'u1', id: 'm1' })).resolves.toBeDefined();

      await ca.rotate(meetingsServer);
      await ca.rotate(grpcIdentities.gateway);
      const after = await eventually(async () => {
        const served = await servedCertificate(port, ca, gatewaySecurity);
        expect(served.serialNumber).not.toBe(before.serialNumber);
        return served;
      });
      expect(after.subject.CN).toBe(meetingsServer);
      // The client, too, presents its new certificate on its next connection.
      meetings.close();
      const again = createGrpcClient(meetingsV1.MeetingsServiceService, `127.0.0.1:${port}`, {
        security: gatewaySecurity,
      });
      await expect(again.getMeeting({ userId: 'u1', id: 'm2' })).resolves.toMatchObject({ meeting: { id: 'm2' } });
      again.close();
    } finally {
      meetings.close();
      await server.stop();
      ca.remove();
    }
  });
});

describe('grpcStatusOfHttpFailure', () => {
  it.each([
    [undefined, grpc.status.UNAVAILABLE],
    [500, grpc.status.UNAVAILABLE],
    [503, grpc.status.UNAVAILABLE],
    [401, grpc.status.UNAUTHENTICATED],
    [403, grpc.status.PERMISSION_DENIED],
    [404, grpc.status.NOT_FOUND],
    [409, grpc.status.ALREADY_EXISTS],
    [429, grpc.status.RESOURCE_EXHAUSTED],
    [400, grpc.status.INVALID_ARGUMENT],
    [422, grpc.status.INVALID_ARGUMENT],
  ])('maps an outside API answering %p to %i', (httpStatus, expected) => {
    expect(grpcStatusOfHttpFailure(httpStatus)).toBe(expected);
  });
});
