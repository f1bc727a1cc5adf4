import { identityV1 } from '@calsync/proto';
import {
  createGrpcClient,
  GrpcStatus,
  hasCode,
  reasonOf,
  type GrpcSecurity,
  type PromiseClient,
} from '@calsync/service-kit';
import { BackfillRejectedError, type TokenSource } from '../backfill/backfill-service';

export type IdentityClient = PromiseClient<typeof identityV1.IdentityServiceService>;

export function createIdentityClient(address: string, security: GrpcSecurity): IdentityClient {
  return createGrpcClient(identityV1.IdentityServiceService, address, { security, defaultTimeoutMs: 10_000 });
}

/** Access tokens from the identity service; a user without a usable connection rejects the backfill. */
export function identityTokenSource(identity: IdentityClient): TokenSource {
  return {
    async accessToken(userId) {
      try {
        const answer = await identity.getAccessToken({ userId, minValiditySeconds: 300 });
        return { accessToken: answer.accessToken, calendlyUserUri: answer.calendlyUserUri };
      } catch (error) {
        if (hasCode(error, GrpcStatus.NOT_FOUND))
          throw new BackfillRejectedError('the user has no Calendly connection');
        if (hasCode(error, GrpcStatus.FAILED_PRECONDITION))
          throw new BackfillRejectedError(
            `the user's Calendly connection cannot be used (${reasonOf(error) ?? 'failed precondition'})`,
          );
        throw error;
      }
    },
  };
}
