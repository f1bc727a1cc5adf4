import type { CalendlyErrorDetail } from './types';

/** Why a Calendly call failed: an HTTP error answer, no answer in time, no connection, or an answer we cannot read. */
export type CalendlyFailure = 'http' | 'timeout' | 'network' | 'invalid_response';

/**
 * A failed Calendly call. Branch on `status` (0 when Calendly never answered) and, for the OAuth
 * endpoints, on `oauthError`; never on `title`. The message names the operation and Calendly's
 * own explanation and never contains a token.
 */
export class CalendlyError extends Error {
  readonly operation: string;
  readonly failure: CalendlyFailure;
  /** The HTTP status, or 0 when there was no HTTP answer (timeout, network). */
  readonly status: number;
  readonly title?: string;
  /** Calendly's human-readable `message` (or OAuth `error_description`). */
  readonly detailsMessage?: string;
  readonly details?: CalendlyErrorDetail[];
  /** From X-RateLimit-Reset / Retry-After on a 429: how long until Calendly accepts calls again. */
  readonly retryAfterSeconds?: number;
  /** The OAuth `error` code of the token endpoints, e.g. `invalid_grant`. */
  readonly oauthError?: string;

  constructor(init: {
    operation: string;
    failure: CalendlyFailure;
    status?: number;
    title?: string;
    detailsMessage?: string;
    details?: CalendlyErrorDetail[];
    retryAfterSeconds?: number;
    oauthError?: string;
    cause?: unknown;
  }) {
    super(describe(init), { cause: init.cause });
    this.name = 'CalendlyError';
    this.operation = init.operation;
    this.failure = init.failure;
    this.status = init.status ?? 0;
    this.title = init.title;
    this.detailsMessage = init.detailsMessage;
    this.details = init.details;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.oauthError = init.oauthError;
  }

  /** True for failures worth trying again later: rate limits, Calendly's 5xx, timeouts and network errors. */
  get transient(): boolean {
    return this.failure === 'timeout' || this.failure === 'network' || this.status === 429 || this.status >= 500;
  }

  /** The status of Calendly's error answer; undefined when it never answered, or answered unreadably. */
  get answeredStatus(): number | undefined {
    return this.failure === 'http' ? this.status : undefined;
  }

  /**
   * The failure in words safe to show any caller or to store: the operation and Calendly's own
   * explanation, never a token. Which status a caller gets is each service's call (docs/errors.md).
   */
  get safeMessage(): string {
    const calendlySays = this.detailsMessage ? `: ${this.detailsMessage}` : '';
    if (this.failure === 'timeout') return `Calendly did not answer ${this.operation} in time`;
    if (this.failure === 'network') return `Calendly could not be reached for ${this.operation}`;
    if (this.failure === 'invalid_response') return `Calendly answered ${this.operation} with an unreadable response`;
    if (this.status === 401)
      return `Calendly refused the credentials for ${this.operation} (invalid, expired or revoked)${calendlySays}`;
    if (this.status === 403) return `Calendly denied ${this.operation}${calendlySays}`;
    if (this.status === 404) return `Calendly found nothing for ${this.operation}`;
    if (this.status === 409) return `Calendly: already exists${calendlySays}`;
    if (this.status === 429) {
      const wait = this.retryAfterSeconds !== undefined ? `; retry in ${this.retryAfterSeconds} s` : '';
      return `Calendly's rate limit was reached for ${this.operation}${wait}`;
    }
    if (this.status >= 500) return `Calendly failed ${this.operation} (HTTP ${this.status})`;
    return `Calendly rejected ${this.operation}${calendlySays}${parameters(this.details)}`;
  }
}

function parameters(details: CalendlyErrorDetail[] | undefined): string {
  const named = (details ?? [])
    .map((detail) => [detail.parameter, detail.message].filter(Boolean).join(' '))
    .filter(Boolean);
  return named.length > 0 ? ` (${named.join('; ')})` : '';
}

function describe(init: {
  operation: string;
  failure: CalendlyFailure;
  status?: number;
  title?: string;
  detailsMessage?: string;
  oauthError?: string;
}): string {
  switch (init.failure) {
    case 'timeout':
      return `calendly ${init.operation}: no answer in time`;
    case 'network':
      return `calendly ${init.operation}: could not connect`;
    case 'invalid_response':
      return `calendly ${init.operation}: unreadable response${init.status ? ` (HTTP ${init.status})` : ''}`;
    case 'http': {
      const what = [init.title, init.oauthError, init.detailsMessage].filter(Boolean).join(': ');
      return `calendly ${init.operation}: HTTP ${init.status}${what ? ` ${what}` : ''}`;
    }
  }
}
