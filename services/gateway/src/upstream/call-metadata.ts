import { Metadata } from '@grpc/grpc-js';

/**
 * gRPC metadata carrying one request's id to the service it calls. Trace context is not set
 * here: OpenTelemetry's gRPC instrumentation adds it to every call when tracing is on.
 */
export function callMetadata(context: { requestId: string }): Metadata {
  const metadata = new Metadata();
  metadata.set('x-request-id', context.requestId);
  return metadata;
}
