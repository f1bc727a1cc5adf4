import { status } from '@grpc/grpc-js';
import { VerifyFailure } from '../gen/calsync/subscription/v1/subscription';

/** How one refusal of VerifyAndResolveUser travels: its gRPC status, and the HTTP answer Calendly gets. */
export interface VerifyFailureAnswer {
  grpc: status;
  http: 400 | 401 | 403 | 404;
  /** The gateway's stable `error` code. */
  code: string;
  message: string;
}

/**
 * The one definition of what each VerifyFailure means on the wire (docs/errors.md): the
 * subscription service sends the gRPC status, the gateway answers with the HTTP status.
 */
export const verifyFailureAnswers: Record<
  Exclude<VerifyFailure, VerifyFailure.VERIFY_FAILURE_UNSPECIFIED | VerifyFailure.UNRECOGNIZED>,
  VerifyFailureAnswer
> = {
  [VerifyFailure.VERIFY_FAILURE_HOOK_NOT_FOUND]: {
    grpc: status.NOT_FOUND,
    http: 404,
    code: 'unknown_hook',
    message: 'no active webhook subscription has this callback URL',
  },
  [VerifyFailure.VERIFY_FAILURE_SIGNATURE_MISSING]: {
    grpc: status.UNAUTHENTICATED,
    http: 401,
    code: 'signature_missing',
    message: 'the Calendly-Webhook-Signature header is missing',
  },
  [VerifyFailure.VERIFY_FAILURE_SIGNATURE_MALFORMED]: {
    grpc: status.UNAUTHENTICATED,
    http: 401,
    code: 'signature_malformed',
    message: 'the Calendly-Webhook-Signature header is not t=<unix seconds>,v1=<hex>[,v1=<hex>]',
  },
  [VerifyFailure.VERIFY_FAILURE_SIGNATURE_MISMATCH]: {
    grpc: status.UNAUTHENTICATED,
    http: 401,
    code: 'signature_mismatch',
    message: 'the signature does not match the body',
  },
  [VerifyFailure.VERIFY_FAILURE_TIMESTAMP_STALE]: {
    grpc: status.UNAUTHENTICATED,
    http: 401,
    code: 'signature_expired',
    message: 'the signature timestamp is too old',
  },
  [VerifyFailure.VERIFY_FAILURE_TIMESTAMP_IN_FUTURE]: {
    grpc: status.UNAUTHENTICATED,
    http: 401,
    code: 'signature_from_future',
    message: 'the signature timestamp is in the future',
  },
  [VerifyFailure.VERIFY_FAILURE_PAYLOAD_NOT_JSON]: {
    grpc: status.INVALID_ARGUMENT,
    http: 400,
    code: 'malformed_json',
    message: 'the request body is not valid JSON',
  },
  [VerifyFailure.VERIFY_FAILURE_PAYLOAD_MALFORMED]: {
    grpc: status.INVALID_ARGUMENT,
    http: 400,
    code: 'malformed_payload',
    message: 'the delivery is not a Calendly webhook envelope',
  },
  [VerifyFailure.VERIFY_FAILURE_PAYLOAD_OTHER_USER]: {
    grpc: status.PERMISSION_DENIED,
    http: 403,
    code: 'payload_not_for_this_hook',
    message: "the delivery does not belong to this subscription's user",
  },
  [VerifyFailure.VERIFY_FAILURE_EVENT_NOT_SUBSCRIBED]: {
    grpc: status.PERMISSION_DENIED,
    http: 403,
    code: 'event_not_subscribed',
    message: 'this subscription does not carry this event',
  },
};

/** The answer for a reason name as it arrives in the `calsync-reason` trailer; undefined for anything else. */
export function verifyFailureAnswerOf(reason: string | undefined): VerifyFailureAnswer | undefined {
  if (!reason?.startsWith('VERIFY_FAILURE_') || !Object.hasOwn(VerifyFailure, reason)) return undefined;
  return verifyFailureAnswers[VerifyFailure[reason as keyof typeof VerifyFailure] as keyof typeof verifyFailureAnswers];
}
