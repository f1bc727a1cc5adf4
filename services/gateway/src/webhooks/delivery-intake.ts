import { eventsV1 } from '@calsync/proto';

/** Why a delivery is refused for good: Calendly must not be told it was stored. */
export type RejectionKind = 'malformed' | 'unauthenticated' | 'forbidden' | 'unknown_hook';

/** A delivery that must never be stored; `code` is a stable snake_case name for callers and metrics. */
export class DeliveryRejected extends Error {
  constructor(
    readonly kind: RejectionKind,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'DeliveryRejected';
  }
}

/** A dependency (subscription or NATS) could not answer: the delivery may succeed if retried. */
export class DependencyUnavailable extends Error {
  constructor(
    readonly dependency: 'subscription' | 'nats',
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DependencyUnavailable';
  }
}

/** Correlation carried with every downstream call of one delivery. */
export interface DeliveryContext {
  requestId: string;
}

/** The subscription service's answer for a genuine delivery. */
export interface VerifiedDelivery {
  userId: string;
  calendlyUserUri: string;
  eventType: string;
  deliveryKey: string;
  hookId: string;
  eventCreatedAt?: Date;
}

/** Checks a delivery's signature and binds it to its user; throws DeliveryRejected or DependencyUnavailable. */
export interface DeliveryVerifier {
  verify(
    request: { hookId: string; signatureHeader: string; rawBody: Buffer },
    context: DeliveryContext,
  ): Promise<VerifiedDelivery>;
}

/** Stores an event durably; resolves only once the store acknowledged it. Throws DependencyUnavailable. */
export interface EventPublisher {
  publish(event: eventsV1.CalendlyEvent, context: DeliveryContext): Promise<{ duplicate: boolean; sequence: number }>;
}

export interface IncomingDelivery {
  /** From the per-user callback path; empty on the legacy single URL. */
  hookId: string;
  signatureHeader: string | undefined;
  rawBody: Buffer;
  context: DeliveryContext;
}

export interface AcceptedDelivery {
  duplicate: boolean;
  sequence: number;
  userId: string;
  eventType: string;
  deliveryKey: string;
}

export interface DeliveryIntake {
  /** Resolves once the delivery is durably stored (or already was); throws DeliveryRejected or DependencyUnavailable. */
  accept(delivery: IncomingDelivery): Promise<AcceptedDelivery>;
}

/**
 * The delivery path: refuse an unsigned delivery without calling anyone, let the subscription
 * service verify the signature, read the envelope and name the user, then publish the
 * byte-exact body with the delivery key as message id so Calendly's retries are stored once.
 * The body is parsed once, by subscription and only after its signature matched: the gateway
 * never reads it (a body that is not JSON is refused there as malformed_json, after the
 * signature, so an unauthenticated sender learns nothing about the body it sent).
 */
export function createDeliveryIntake(deps: {
  verifier: DeliveryVerifier;
  publisher: EventPublisher;
  now?: () => Date;
}): DeliveryIntake {
  const now = deps.now ?? (() => new Date());
  return {
    async accept(delivery) {
      const signatureHeader = delivery.signatureHeader?.trim();
      if (!signatureHeader) {
        throw new DeliveryRejected(
          'unauthenticated',
          'signature_missing',
          'the Calendly-Webhook-Signature header is missing',
        );
      }
      const verified = await deps.verifier
        .verify({ hookId: delivery.hookId, signatureHeader, rawBody: delivery.rawBody }, delivery.context)
        .catch(unlessExpected('subscription'));
      const ack = await deps.publisher
        .publish(
          {
            deliveryKey: verified.deliveryKey,
            userId: verified.userId,
            calendlyUserUri: verified.calendlyUserUri,
            eventType: verified.eventType,
            calendlyCreatedAt: verified.eventCreatedAt,
            receivedAt: now(),
            payload: delivery.rawBody,
            hookId: verified.hookId,
          },
          delivery.context,
        )
        .catch(unlessExpected('nats'));
      return {
        duplicate: ack.duplicate,
        sequence: ack.sequence,
        userId: verified.userId,
        eventType: verified.eventType,
        deliveryKey: verified.deliveryKey,
      };
    },
  };
}

/** Errors the ports did not classify still mean "could not store now": Calendly should retry. */
function unlessExpected(dependency: DependencyUnavailable['dependency']) {
  return (error: unknown): never => {
    if (error instanceof DeliveryRejected || error instanceof DependencyUnavailable) throw error;
    throw new DependencyUnavailable(dependency, `${dependency} failed unexpectedly`, error);
  };
}
