import type { Logger } from '@calsync/service-kit';
import { subscriptionV1 } from '@calsync/proto';
import { creatorOf, deliveryKeyOf, parseWebhookEnvelope, type WebhookEnvelope } from '@calsync/calendly-client';
import { legacyHookKey, type CachedHook, type HookCache } from '../webhooks/hook-cache';
import type { WebhookState } from '../webhooks/webhook-repository';
import { isWellFormedHookId } from '../webhooks/webhook-secrets';
import { parseSignatureHeader, signatureMatches } from './signature';

const { VerifyFailure } = subscriptionV1;
const maxCreatorUriLength = 512;
type VerifyFailureValue = subscriptionV1.VerifyFailure;

/** A genuine delivery and whose it is. */
export interface VerifiedDelivery {
  userId: string;
  calendlyUserUri: string;
  eventType: string;
  deliveryKey: string;
  hookId: string;
  eventCreatedAt: Date;
}

export type VerifyOutcome = 'ok' | keyof typeof subscriptionV1.VerifyFailure;

export interface Verifier {
  verify(request: { hookId: string; signatureHeader: string; rawBody: Buffer }): Promise<VerifiedDelivery>;
}

/** Where an organization-wide legacy delivery finds its user, once its signature is verified. */
export interface LegacyResolver {
  /** The platform user behind a Calendly user, for organization-scoped legacy deliveries. */
  userOfCalendlyUser(calendlyUserUri: string): Promise<{ userId: string; calendlyUserUri: string } | undefined>;
}

/** A delivery refused for good, and why; the gRPC adapter turns it into its status. */
export class DeliveryRefused extends Error {
  constructor(readonly failure: VerifyFailureValue) {
    super(`delivery refused: ${subscriptionV1.verifyFailureToJSON(failure)}`);
    this.name = 'DeliveryRefused';
  }
}

/**
 * VerifyAndResolveUser's logic. The hook comes from an O(1) map (for the legacy URL keyed by
 * created_by); the timestamp must sit within the tolerance on either side; one
 * HMAC with that hook's key is compared in constant time with each v1 value; and the payload
 * must concern the hook's Calendly user, which is what stops a delivery for user A, signed
 * with the application key both share, from being accepted on user B's URL.
 */
export function createVerifier(options: {
  cache: HookCache;
  legacy: LegacyResolver;
  /** The OAuth application's signing key, for hooks whose deliveries Calendly signs with it. */
  applicationSigningKey: string | undefined;
  toleranceSeconds: number;
  log: Logger;
  now?: () => number;
  /** Every answer, with the state of the hook it was for ('none': no such hook). */
  onOutcome?: (outcome: VerifyOutcome, hookState: WebhookState | 'none') => void;
  onVerified?: (hookId: string, at: Date) => void;
  /** A delivery to a hook we know was refused (the VerifyFailure name). */
  onRefused?: (hookId: string, at: Date, reason: string) => void;
}): Verifier {
  const now = options.now ?? Date.now;
  const applicationKey = options.applicationSigningKey ? Buffer.from(options.applicationSigningKey) : undefined;

  const refuse = (failure: VerifyFailureValue, hook?: CachedHook): never => {
    const name = subscriptionV1.verifyFailureToJSON(failure);
    options.onOutcome?.(name as VerifyOutcome, hook?.state ?? 'none');
    if (hook) options.onRefused?.(hook.hookId, new Date(now()), name);
    throw new DeliveryRefused(failure);
  };

  const findHook = async (hookId: string, rawBody: Buffer): Promise<CachedHook | undefined> => {
    if (hookId === '') {
      // The legacy URL: the seed-era hook its creator made, from the same invalidated cache as
      // per-user hooks, so an unsigned request costs no database query once the hook is known.
      const creator = creatorOf(rawBody);
      // Calendly user URIs are short; a long one would only fill the cache's memory of unknowns.
      return creator && creator.length <= maxCreatorUriLength ? options.cache.get(legacyHookKey(creator)) : undefined;
    }
    return isWellFormedHookId(hookId) ? options.cache.get(hookId) : undefined;
  };

  return {
    async verify({ hookId, signatureHeader, rawBody }) {
      const hook = await findHook(hookId, rawBody);
      if (!hook || hook.refusing) return refuse(VerifyFailure.VERIFY_FAILURE_HOOK_NOT_FOUND);
      if (signatureHeader === '') return refuse(VerifyFailure.VERIFY_FAILURE_SIGNATURE_MISSING, hook);
      const signature = parseSignatureHeader(signatureHeader);
      if (!signature) return refuse(VerifyFailure.VERIFY_FAILURE_SIGNATURE_MALFORMED, hook);

      const ageSeconds = now() / 1000 - signature.timestamp;
      if (ageSeconds > options.toleranceSeconds) return refuse(VerifyFailure.VERIFY_FAILURE_TIMESTAMP_STALE, hook);
      if (ageSeconds < -options.toleranceSeconds) return refuse(VerifyFailure.VERIFY_FAILURE_TIMESTAMP_IN_FUTURE, hook);

      const key = hook.signingKey ?? applicationKey;
      if (!key) {
        options.log.error({ hookId: hook.hookId }, 'hook signed with the application key, which is not configured');
        return refuse(VerifyFailure.VERIFY_FAILURE_SIGNATURE_MISMATCH, hook);
      }
      if (!signatureMatches(key, signature, rawBody))
        return refuse(VerifyFailure.VERIFY_FAILURE_SIGNATURE_MISMATCH, hook);

      const parsed = parseWebhookEnvelope(rawBody);
      if (!parsed.ok) {
        const notJson = parsed.problem === 'not_json';
        return refuse(
          notJson ? VerifyFailure.VERIFY_FAILURE_PAYLOAD_NOT_JSON : VerifyFailure.VERIFY_FAILURE_PAYLOAD_MALFORMED,
          hook,
        );
      }
      const { envelope } = parsed;
      if (!hook.events.has(envelope.event)) return refuse(VerifyFailure.VERIFY_FAILURE_EVENT_NOT_SUBSCRIBED, hook);

      let owner: { userId: string; calendlyUserUri: string } | undefined = hook;
      if (hook.scope === 'organization') {
        // One subscription for the whole organization: the delivery belongs to whichever
        // connected user hosts the event, found through an index on the Calendly user URI.
        owner = undefined;
        for (const member of envelope.hostUris) {
          owner = await options.legacy.userOfCalendlyUser(member);
          if (owner) break;
        }
      } else if (!belongsTo(envelope, hook.calendlyUserUri)) {
        owner = undefined;
      }
      if (!owner) return refuse(VerifyFailure.VERIFY_FAILURE_PAYLOAD_OTHER_USER, hook);

      options.onOutcome?.('ok', hook.state);
      options.onVerified?.(hook.hookId, new Date(now()));
      return {
        userId: owner.userId,
        calendlyUserUri: owner.calendlyUserUri,
        eventType: envelope.event,
        deliveryKey: deliveryKeyOf(owner.userId, envelope),
        hookId: hook.hookId,
        eventCreatedAt: envelope.createdAt,
      };
    },
  };
}

/** True when the delivery concerns this Calendly user: they created the subscription or host the event. */
function belongsTo(envelope: WebhookEnvelope, calendlyUserUri: string): boolean {
  return envelope.createdBy === calendlyUserUri || envelope.hostUris.includes(calendlyUserUri);
}
