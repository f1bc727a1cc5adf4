import { EventEmitter, getEventListeners } from 'node:events';
import type { subscriptionV1 } from '@calsync/proto';
import type { DuplexStream } from '@calsync/service-kit';
import { captureLogger } from '@calsync/service-kit/testing';
import { verifyDeliveries } from './verify-deliveries';

/** A VerifyDeliveries call as the kit hands it over: the caller's side is `caller`. */
function openStream(draining: AbortSignal) {
  const caller = new EventEmitter();
  const cancelled = new AbortController();
  const stream: DuplexStream<subscriptionV1.VerifyDeliveriesRequest, subscriptionV1.VerifyDeliveriesResponse> = {
    onMessage: (listener) => caller.on('data', listener),
    onEnd: (listener) => caller.once('end', listener),
    signal: cancelled.signal,
    draining,
    write: () => Promise.resolve(),
  };
  const handled = verifyDeliveries(stream, {
    // No item is sent: the calls below are about the stream's life, not about verifying.
    verifier: { verify: () => Promise.reject(new Error('no delivery was sent')) },
    log: captureLogger('verify-deliveries', 'silent').log,
    toGrpcError: () => undefined,
  });
  return { caller, cancelled, handled };
}

it("leaves no listener on the server's drain signal once a stream is done, however it ended", async () => {
  // The drain signal lives as long as the server: every stream a gateway ever opened used to
  // leave a listener on it, holding the finished stream (Node warned past ten).
  const draining = new AbortController();
  const halfClosed = openStream(draining.signal);
  halfClosed.caller.emit('end');
  await halfClosed.handled;
  const cancelled = openStream(draining.signal);
  cancelled.cancelled.abort();
  await cancelled.handled;
  expect(getEventListeners(draining.signal, 'abort')).toEqual([]);
  expect(getEventListeners(cancelled.cancelled.signal, 'abort')).toEqual([]);

  // Draining ends a stream in hand too (UNAVAILABLE: the caller opens a new one elsewhere).
  const open = openStream(draining.signal);
  expect(getEventListeners(draining.signal, 'abort')).toHaveLength(1);
  draining.abort();
  await expect(open.handled).rejects.toMatchObject({ code: 14 });
});
