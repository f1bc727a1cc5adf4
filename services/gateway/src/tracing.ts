// Imported first by main.ts: instrumentation has to be in place before grpc-js, pg and http load.
import { startTracing } from '@calsync/service-kit/tracing';

startTracing('gateway');
