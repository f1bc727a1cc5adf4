import { Counter, Histogram, latencyBuckets, type Logger, type Registry } from '@calsync/service-kit';
import { z } from 'zod';
import { CalendlyError } from './errors';
import {
  calendlyUserSchema,
  errorBodySchema,
  introspectionSchema,
  inviteeSchema,
  paginationSchema,
  scheduledEventSchema,
  tokenResponseSchema,
  webhookSubscriptionSchema,
  type CalendlyUser,
  type Invitee,
  type Page,
  type RateLimitState,
  type ScheduledEvent,
  type TokenResponse,
  type WebhookScope,
  type WebhookSubscription,
} from './types';

export interface CalendlyClientOptions {
  /** Calendly's API base, e.g. https://api.calendly.com (the simulator in dev and tests). */
  apiUrl: string;
  /** Calendly's OAuth base, e.g. https://auth.calendly.com. */
  authUrl: string;
  /** OAuth application credentials; only the OAuth operations need them. */
  clientId?: string;
  clientSecret?: string;
  /** Deadline of one attempt, body included. */
  timeoutMs?: number;
  /** Further attempts after the first, for rate limits, 5xx and (where safe) network failures. */
  maxRetries?: number;
  /** First back-off delay; doubles with each attempt, with jitter. */
  retryBaseDelayMs?: number;
  /** The longest the client ever sleeps before a retry: a later rate-limit reset fails at once instead. */
  maxRetryDelayMs?: number;
  log: Logger;
  registry?: Registry;
}

export interface WebhookSubscriptionQuery {
  organization: string;
  scope: WebhookScope;
  user?: string;
}

export interface ScheduledEventsQuery {
  user: string;
  minStartTime?: string;
  maxStartTime?: string;
  status?: 'active' | 'canceled';
  count?: number;
  pageToken?: string;
  sort?: string;
}

/** Calendly API v2 and OAuth, as shared/CALENDLY.md describes them. Every method throws CalendlyError on failure. */
export interface CalendlyClient {
  /** Trades an authorization code (with its PKCE verifier) for tokens. */
  exchangeCode(input: { code: string; redirectUri: string; codeVerifier: string }): Promise<TokenResponse>;
  /** Trades a single-use refresh token for a new access token AND a new refresh token. */
  refreshToken(refreshToken: string): Promise<TokenResponse>;
  revokeToken(token: string): Promise<void>;
  introspectToken(token: string): Promise<{ active: boolean; [k: string]: unknown }>;
  getCurrentUser(accessToken: string): Promise<CalendlyUser>;
  createWebhookSubscription(
    accessToken: string,
    input: {
      url: string;
      events: string[];
      organization: string;
      scope: WebhookScope;
      user?: string;
      group?: string;
      signingKey?: string;
    },
  ): Promise<WebhookSubscription>;
  listWebhookSubscriptions(
    accessToken: string,
    query: WebhookSubscriptionQuery & { count?: number; pageToken?: string },
  ): Promise<Page<WebhookSubscription>>;
  /** Every page of the list, following `next_page_token`. */
  listAllWebhookSubscriptions(accessToken: string, query: WebhookSubscriptionQuery): Promise<WebhookSubscription[]>;
  /** `uri` is the subscription's URI (or its uuid). */
  getWebhookSubscription(accessToken: string, uri: string): Promise<WebhookSubscription>;
  /** 204 and 404 both mean the subscription is gone. */
  deleteWebhookSubscription(accessToken: string, uri: string): Promise<'deleted' | 'not_found'>;
  listScheduledEvents(accessToken: string, query: ScheduledEventsQuery): Promise<Page<ScheduledEvent>>;
  listEventInvitees(
    accessToken: string,
    scheduledEventUri: string,
    query?: { count?: number; pageToken?: string; status?: string },
  ): Promise<Page<Invitee>>;
}

type Query = Record<string, string | number | undefined>;

interface Request {
  operation: string;
  base: 'api' | 'auth';
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  query?: Query;
  bearer?: string;
  basicAuth?: boolean;
  form?: Record<string, string>;
  json?: unknown;
  /** Safe to send twice: a timeout or dropped connection may then be retried too. */
  idempotent: boolean;
}

interface Answer {
  status: number;
  body: unknown;
  rateLimit?: RateLimitState;
}

/** Errors from undici that prove the request never left this machine, so even a POST may be retried. */
const notSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);
const maxPages = 1_000;

const resourceEnvelope = <T>(schema: z.ZodType<T>) => z.object({ resource: schema });
const pageEnvelope = <T>(schema: z.ZodType<T>) =>
  z.object({ collection: z.array(schema), pagination: paginationSchema });
const resourceEnvelopes = new WeakMap<z.ZodType, z.ZodType>();
const pageEnvelopes = new WeakMap<z.ZodType, z.ZodType>();

/**
 * The schema of an answer wrapping `schema` (`{resource}` or `{collection, pagination}`), made
 * once per item schema: zod compiles a schema on its first parse, so an envelope built per call
 * cost 30-70 µs of CPU per answer against about 1 µs with one made once.
 */
function envelopeOf<T, E>(
  cache: WeakMap<z.ZodType, z.ZodType>,
  schema: z.ZodType<T>,
  make: (schema: z.ZodType<T>) => z.ZodType<E>,
): z.ZodType<E> {
  let envelope = cache.get(schema);
  if (!envelope) {
    envelope = make(schema);
    cache.set(schema, envelope);
  }
  return envelope as z.ZodType<E>;
}

/** Creates the Calendly client. One per process is enough; it holds no per-user state. */
export function createCalendlyClient(options: CalendlyClientOptions): CalendlyClient {
  const { log } = options;
  const bases = { api: trimSlash(options.apiUrl), auth: trimSlash(options.authUrl) };
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRetries = options.maxRetries ?? 2;
  const retryBaseDelayMs = options.retryBaseDelayMs ?? 250;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 10_000;
  const metrics = options.registry ? createMetrics(options.registry) : undefined;

  const clientCredentials = (operation: string) => {
    if (!options.clientId || !options.clientSecret)
      throw new Error(`calendly ${operation}: the OAuth client id and secret are not configured`);
    return { clientId: options.clientId, clientSecret: options.clientSecret };
  };

  /** The URL and fetch options of a request: built once, sent on every attempt. */
  function prepare(request: Request): { url: URL; init: RequestInit } {
    const url = new URL(bases[request.base] + request.path);
    for (const [key, value] of Object.entries(request.query ?? {}))
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'calsync' };
    let body: string | undefined;
    if (request.bearer !== undefined) headers.authorization = `Bearer ${request.bearer}`;
    if (request.basicAuth) {
      const { clientId, clientSecret } = clientCredentials(request.operation);
      headers.authorization = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
    }
    if (request.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(request.form).toString();
    } else if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    }
    // A redirect is never part of Calendly's API; following one could carry the token elsewhere.
    return { url, init: { method: request.method, headers, body, redirect: 'manual' } };
  }

  async function attempt(operation: string, prepared: { url: URL; init: RequestInit }): Promise<Answer> {
    const response = await fetch(prepared.url, { ...prepared.init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (response.status >= 300) throw httpError(operation, response, parsed);
    if (text.length > 0 && parsed === undefined)
      throw new CalendlyError({ operation, failure: 'invalid_response', status: response.status });
    return { status: response.status, body: parsed, rateLimit: rateLimitOf(response.headers) };
  }

  async function send(request: Request, accept: (status: number) => boolean = () => false): Promise<Answer> {
    const prepared = prepare(request);
    for (let attemptNo = 0; ; attemptNo++) {
      const started = process.hrtime.bigint();
      try {
        const answer = await attempt(request.operation, prepared);
        observe(request.operation, String(answer.status), started);
        return answer;
      } catch (caught) {
        const error = classify(request.operation, caught);
        const outcome = error.failure === 'http' ? String(error.status) : error.failure;
        observe(request.operation, outcome, started);
        if (error.failure === 'http' && accept(error.status)) return { status: error.status, body: undefined };
        const delayMs = retryDelay(request, error, attemptNo);
        if (delayMs === undefined) throw error;
        log.warn(
          { operation: request.operation, status: outcome, attempt: attemptNo + 1, delayMs: Math.round(delayMs) },
          'calendly call failed; retrying',
        );
        await sleep(delayMs);
      }
    }
  }

  function observe(operation: string, status: string, started: bigint) {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics?.requests.inc({ operation, status });
    metrics?.duration.observe({ operation }, seconds);
    log.debug({ operation, status, ms: Math.round(seconds * 1e4) / 10 }, 'calendly call');
  }

  /** How long to wait before trying again, or undefined when this failure is final. */
  function retryDelay(request: Request, error: CalendlyError, attemptNo: number): number | undefined {
    if (attemptNo >= maxRetries) return undefined;
    const backoff = Math.min(maxRetryDelayMs, retryBaseDelayMs * 2 ** attemptNo * (0.5 + Math.random() / 2));
    if (error.status === 429) {
      if (error.retryAfterSeconds === undefined) return backoff;
      const untilReset = error.retryAfterSeconds * 1000 + Math.random() * retryBaseDelayMs;
      // Sleeping past the bound would hold the caller hostage; let it decide instead.
      return untilReset > maxRetryDelayMs ? undefined : Math.max(untilReset, backoff);
    }
    if (error.failure === 'http' || error.failure === 'invalid_response')
      return error.status >= 500 ? backoff : undefined;
    // No answer: the request may still be running at Calendly, so only repeat what is safe to repeat.
    if (request.idempotent || (error.failure === 'network' && neverSent(error.cause))) return backoff;
    return undefined;
  }

  async function resource<T>(request: Request, schema: z.ZodType<T>): Promise<T> {
    const answer = await send(request);
    return validate(request.operation, envelopeOf(resourceEnvelopes, schema, resourceEnvelope), answer.body).resource;
  }

  async function page<T>(request: Request, schema: z.ZodType<T>): Promise<Page<T>> {
    const answer = await send(request);
    const page = validate(request.operation, envelopeOf(pageEnvelopes, schema, pageEnvelope), answer.body);
    return answer.rateLimit ? { ...page, rateLimit: answer.rateLimit } : page;
  }

  function validate<T>(operation: string, schema: z.ZodType<T>, body: unknown): T {
    const result = schema.safeParse(body);
    if (result.success) return result.data;
    // Paths only: the values may be secrets (a token response).
    log.warn(
      { operation, problems: result.error.issues.map((issue) => issue.path.join('.')) },
      'calendly answer unreadable',
    );
    throw new CalendlyError({ operation, failure: 'invalid_response' });
  }

  const tokenGrant = async (operation: string, form: Record<string, string>) => {
    const answer = await send({
      operation,
      base: 'auth',
      method: 'POST',
      path: '/oauth/token',
      basicAuth: true,
      form,
      idempotent: false,
    });
    return validate(operation, tokenResponseSchema, answer.body);
  };

  const listWebhookSubscriptions: CalendlyClient['listWebhookSubscriptions'] = (accessToken, query) =>
    page(
      {
        operation: 'listWebhookSubscriptions',
        base: 'api',
        method: 'GET',
        path: '/webhook_subscriptions',
        bearer: accessToken,
        query: {
          organization: query.organization,
          scope: query.scope,
          user: query.user,
          count: query.count,
          page_token: query.pageToken,
        },
        idempotent: true,
      },
      webhookSubscriptionSchema,
    );

  return {
    exchangeCode: (input) =>
      tokenGrant('exchangeCode', {
        grant_type: 'authorization_code',
        code: input.code,
        redirect_uri: input.redirectUri,
        code_verifier: input.codeVerifier,
      }),

    refreshToken: (refreshToken) =>
      tokenGrant('refreshToken', { grant_type: 'refresh_token', refresh_token: refreshToken }),

    async revokeToken(token) {
      const { clientId, clientSecret } = clientCredentials('revokeToken');
      await send({
        operation: 'revokeToken',
        base: 'auth',
        method: 'POST',
        path: '/oauth/revoke',
        form: { client_id: clientId, client_secret: clientSecret, token },
        idempotent: true,
      });
    },

    async introspectToken(token) {
      const { clientId, clientSecret } = clientCredentials('introspectToken');
      const answer = await send({
        operation: 'introspectToken',
        base: 'auth',
        method: 'POST',
        path: '/oauth/introspect',
        form: { client_id: clientId, client_secret: clientSecret, token },
        idempotent: true,
      });
      return validate('introspectToken', introspectionSchema, answer.body);
    },

    getCurrentUser: (accessToken) =>
      resource(
        {
          operation: 'getCurrentUser',
          base: 'api',
          method: 'GET',
          path: '/users/me',
          bearer: accessToken,
          idempotent: true,
        },
        calendlyUserSchema,
      ),

    createWebhookSubscription: (accessToken, input) =>
      resource(
        {
          operation: 'createWebhookSubscription',
          base: 'api',
          method: 'POST',
          path: '/webhook_subscriptions',
          bearer: accessToken,
          json: {
            url: input.url,
            events: input.events,
            organization: input.organization,
            scope: input.scope,
            ...(input.user !== undefined && { user: input.user }),
            ...(input.group !== undefined && { group: input.group }),
            ...(input.signingKey !== undefined && { signing_key: input.signingKey }),
          },
          idempotent: false,
        },
        webhookSubscriptionSchema,
      ),

    listWebhookSubscriptions,

    async listAllWebhookSubscriptions(accessToken, query) {
      const all: WebhookSubscription[] = [];
      const seen = new Set<string>();
      let pageToken: string | undefined;
      for (let pages = 0; pages < maxPages; pages++) {
        const current = await listWebhookSubscriptions(accessToken, { ...query, count: 100, pageToken });
        all.push(...current.collection);
        const next = current.pagination.next_page_token;
        if (!next) return all;
        if (seen.has(next))
          throw new CalendlyError({
            operation: 'listAllWebhookSubscriptions',
            failure: 'invalid_response',
            status: 200,
          });
        seen.add(next);
        pageToken = next;
      }
      throw new CalendlyError({ operation: 'listAllWebhookSubscriptions', failure: 'invalid_response', status: 200 });
    },

    // async, so a malformed URI rejects like every other failure instead of throwing synchronously
    getWebhookSubscription: async (accessToken, uri) =>
      resource(
        {
          operation: 'getWebhookSubscription',
          base: 'api',
          method: 'GET',
          path: `/webhook_subscriptions/${uuidOf(uri, 'webhook subscription')}`,
          bearer: accessToken,
          idempotent: true,
        },
        webhookSubscriptionSchema,
      ),

    async deleteWebhookSubscription(accessToken, uri) {
      const answer = await send(
        {
          operation: 'deleteWebhookSubscription',
          base: 'api',
          method: 'DELETE',
          path: `/webhook_subscriptions/${uuidOf(uri, 'webhook subscription')}`,
          bearer: accessToken,
          idempotent: true,
        },
        (status) => status === 404,
      );
      return answer.status === 404 ? 'not_found' : 'deleted';
    },

    listScheduledEvents: (accessToken, query) =>
      page(
        {
          operation: 'listScheduledEvents',
          base: 'api',
          method: 'GET',
          path: '/scheduled_events',
          bearer: accessToken,
          query: {
            user: query.user,
            min_start_time: query.minStartTime,
            max_start_time: query.maxStartTime,
            status: query.status,
            sort: query.sort,
            count: query.count,
            page_token: query.pageToken,
          },
          idempotent: true,
        },
        scheduledEventSchema,
      ),

    listEventInvitees: async (accessToken, scheduledEventUri, query = {}) =>
      page(
        {
          operation: 'listEventInvitees',
          base: 'api',
          method: 'GET',
          path: `/scheduled_events/${uuidOf(scheduledEventUri, 'scheduled event')}/invitees`,
          bearer: accessToken,
          query: { count: query.count, page_token: query.pageToken, status: query.status },
          idempotent: true,
        },
        inviteeSchema,
      ),
  };
}

function createMetrics(registry: Registry) {
  // Several clients may share one registry (tests, or a service with two Calendly configs).
  const requests =
    (registry.getSingleMetric('calendly_requests_total') as Counter<'operation' | 'status'> | undefined) ??
    new Counter({
      name: 'calendly_requests_total',
      help: 'Calendly HTTP attempts, by operation and HTTP status (or timeout/network)',
      labelNames: ['operation', 'status'],
      registers: [registry],
    });
  const duration =
    (registry.getSingleMetric('calendly_request_duration_seconds') as Histogram<'operation'> | undefined) ??
    new Histogram({
      name: 'calendly_request_duration_seconds',
      help: 'Calendly HTTP attempt duration, by operation',
      labelNames: ['operation'],
      buckets: latencyBuckets,
      registers: [registry],
    });
  return { requests, duration };
}

function httpError(operation: string, response: Response, body: unknown): CalendlyError {
  const parsed = errorBodySchema.safeParse(body);
  const fields = parsed.success ? parsed.data : {};
  return new CalendlyError({
    operation,
    failure: 'http',
    status: response.status,
    title: fields.title,
    detailsMessage: fields.message ?? fields.error_description,
    details: fields.details,
    oauthError: fields.error,
    retryAfterSeconds: response.status === 429 ? retryAfterSeconds(response.headers) : undefined,
  });
}

/** The `X-RateLimit-*` headers of an answer, or undefined unless all three are readable. */
export function rateLimitOf(headers: Headers): RateLimitState | undefined {
  const read = (name: string) => {
    const raw = headers.get(name);
    if (raw === null || raw.trim() === '') return undefined;
    const value = Number(raw);
    return Number.isFinite(value) && value >= 0 ? value : undefined;
  };
  const limit = read('x-ratelimit-limit');
  const remaining = read('x-ratelimit-remaining');
  const reset = read('x-ratelimit-reset');
  if (limit === undefined || remaining === undefined || reset === undefined) return undefined;
  // Calendly documents seconds until the reset; an epoch timestamp would be far larger.
  const resetSeconds = reset > 1e9 ? Math.max(0, Math.ceil(reset - Date.now() / 1000)) : Math.ceil(reset);
  return { limit, remaining, resetSeconds };
}

/** Seconds until Calendly accepts calls again, from Retry-After or X-RateLimit-Reset. */
export function retryAfterSeconds(headers: Headers): number | undefined {
  for (const name of ['retry-after', 'x-ratelimit-reset']) {
    const raw = headers.get(name);
    if (raw === null || raw.trim() === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) continue;
    // Calendly documents seconds until the reset; an epoch timestamp would be far larger.
    return value > 1e9 ? Math.max(0, Math.ceil(value - Date.now() / 1000)) : Math.ceil(value);
  }
  return undefined;
}

/** What went wrong with one attempt, as a CalendlyError; anything that is not a failed call is rethrown. */
function classify(operation: string, error: unknown): CalendlyError {
  if (error instanceof CalendlyError) return error;
  const name = (error as { name?: string } | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError')
    return new CalendlyError({ operation, failure: 'timeout', cause: error });
  if (error instanceof TypeError || (error as { cause?: unknown } | undefined)?.cause !== undefined)
    return new CalendlyError({ operation, failure: 'network', cause: (error as { cause?: unknown }).cause ?? error });
  throw error;
}

function neverSent(cause: unknown): boolean {
  const code = (cause as { code?: string } | undefined)?.code;
  return code !== undefined && notSentCodes.has(code);
}

/** The last path segment of a Calendly URI (or the bare uuid), so a token is only ever sent to apiUrl. */
function uuidOf(uri: string, what: string): string {
  const segment = uri.startsWith('http') ? (new URL(uri).pathname.split('/').filter(Boolean).pop() ?? '') : uri;
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(segment)) throw new RangeError(`"${uri}" is not a Calendly ${what} URI`);
  return segment;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
