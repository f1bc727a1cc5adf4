import { createServer, type Server } from 'node:net';
import { startSimulator, type Simulator } from '@calsync/calendly-sim';
import { captureLogger, createTestDatabase, type TestDatabase } from '@calsync/service-kit/testing';
import { loadIdentityConfig } from './config';
import { start } from './main';
import { identityEnv, newSealingKey } from '../test/harness';

let database: TestDatabase;
let sim: Simulator;
const keys = { k1: newSealingKey() };

beforeAll(async () => {
  database = await createTestDatabase('identity_start');
  sim = await startSimulator({ port: 0 });
});

afterAll(async () => {
  await sim?.stop();
  await database?.drop();
});

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
const portOf = (server: Server) => (server.address() as { port: number }).port;
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

it('closes what it opened when a later step of its start fails', async () => {
  const taken = await listen();
  const probe = await listen();
  const grpcPort = portOf(probe);
  await close(probe);
  const env = await identityEnv({ databaseUrl: database.url, sim, keys, activeKeyId: 'k1' });
  const config = loadIdentityConfig({ ...env, GRPC_PORT: String(grpcPort), METRICS_PORT: String(portOf(taken)) });

  await expect(start(config, { log: captureLogger('identity', 'silent').log })).rejects.toThrow();
  // The gRPC server that did start is closed again: its port is free.
  await close(await listen(grpcPort));
  await close(taken);
});

it('refuses to start when its gRPC port is taken, and starts once it is free', async () => {
  const taken = await listen();
  const env = await identityEnv({ databaseUrl: database.url, sim, keys, activeKeyId: 'k1' });
  const config = loadIdentityConfig({ ...env, GRPC_PORT: String(portOf(taken)) });
  await expect(start(config, { log: captureLogger('identity', 'silent').log })).rejects.toThrow();
  await close(taken);
  const app = await start(config, { log: captureLogger('identity', 'silent').log });
  await app.stop();
});
