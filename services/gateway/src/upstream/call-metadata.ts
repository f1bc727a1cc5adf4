import { Metadata } from '@grpc/grpc-js';

/** gRPC metadata carrying one request's id and W3C trace context to the service it calls. */
export function callMetadata(context: { requestId: string; traceparent: string; tracestate?: string }): Metadata {
  const metadata = new Metadata();
  metadata.set('x-request-id', context.requestId);
  metadata.set('traceparent', context.traceparent);
  if (context.tracestate) metadata.set('tracestate', context.tracestate);
  return metadata;
}
