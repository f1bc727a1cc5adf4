import { verifyFailureAnswers } from '@calsync/proto';
import type {
  HeaderObject,
  OpenAPIObject,
  OperationObject,
  ParameterObject,
  ResponseObject,
  SchemaObject,
} from 'openapi3-ts/oas31';
import { webhookStateNames } from '../upstream/connection-service';
import { degradedReasons, importStatusNames, syncModeNames, syncStateNames } from '../connections/sync-state';
import type { RejectionKind } from '../webhooks/delivery-intake';
import { defaultCodeByKind } from '../upstream/subscription-verifier';
import { statusByKind } from '../webhooks/webhook-routes';

/*
 * The gateway's HTTP API as OpenAPI 3.1: the contract the platform's front-end generates its
 * client from, served at GET /openapi.json and rendered to docs/http-api.md. Add a route here in
 * the same commit as the route: test/openapi.test.ts fails when the router serves a route this
 * document does not describe (or the reverse), and checks every documented answer against a real
 * one. Enumerations that code defines (refusal codes, webhook states) are imported, not restated.
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: SchemaObject): SchemaObject => ({ anyOf: [schema, { type: 'null' }] });
const dateTime: SchemaObject = { type: 'string', format: 'date-time' };
const nullableDateTime: SchemaObject = { type: ['string', 'null'], format: 'date-time' };
const nullableString: SchemaObject = { type: ['string', 'null'] };
const object = (properties: Record<string, SchemaObject>, description?: string): SchemaObject => ({
  type: 'object',
  ...(description ? { description } : {}),
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
});

const retryAfter: HeaderObject = {
  description: 'Seconds to wait before trying again',
  required: true,
  schema: { type: 'integer', minimum: 1 },
};
const requestIdHeader: HeaderObject = {
  description:
    "The request's id: the caller's X-Request-Id when it is a plain token of at most 128 characters, else a new UUID",
  required: true,
  schema: { type: 'string' },
};

const json = (schema: SchemaObject) => ({ 'application/json': { schema } });

/** A refusal `{error, message}` whose `error` is one of `codes`. */
function problem(description: string, codes: string[], headers: Record<string, HeaderObject> = {}): ResponseObject {
  return {
    description,
    headers: { 'X-Request-Id': requestIdHeader, ...headers },
    content: json({
      allOf: [ref('Problem'), { type: 'object', properties: { error: { enum: [...new Set(codes)].sort() } } }],
    }),
  };
}

function ok(description: string, schema: SchemaObject, headers: Record<string, HeaderObject> = {}): ResponseObject {
  return { description, headers: { 'X-Request-Id': requestIdHeader, ...headers }, content: json(schema) };
}

const unauthorized = problem(
  'No valid platform JWT (missing, bad signature, expired, too old, wrong issuer...)',
  ['unauthorized'],
  {
    'WWW-Authenticate': { description: 'Bearer challenge', required: true, schema: { type: 'string' } },
  },
);
const unavailable = (codes: string[]) =>
  problem('A service the answer needs (or the JWT key set) cannot answer now; retry after Retry-After', codes, {
    'Retry-After': retryAfter,
  });
const upstreamUnavailable = unavailable(['service_unavailable', 'auth_unavailable']);

const bearer = [{ platformJwt: [] }];

/** A route that needs the platform user's JWT. */
function userOperation(operation: OperationObject): OperationObject {
  return {
    security: bearer,
    ...operation,
    responses: { ...operation.responses, 401: unauthorized, 503: upstreamUnavailable },
  };
}

/** The `error` codes of refused deliveries answered with `status`, from the tables that decide them. */
const refusalCodes = (status: number) => [
  ...new Set([
    ...Object.values(verifyFailureAnswers)
      .filter((answer) => answer.http === status)
      .map((answer) => answer.code),
    ...Object.entries(defaultCodeByKind)
      .filter(([kind]) => statusByKind[kind as RejectionKind] === status)
      .map(([, answer]) => answer.code),
  ]),
];

function deliveryOperation(summary: string, description: string, parameters: ParameterObject[]): OperationObject {
  return {
    tags: ['deliveries'],
    summary,
    description,
    parameters: [
      ...parameters,
      {
        name: 'Calendly-Webhook-Signature',
        in: 'header',
        required: true,
        description: '`t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>`, as Calendly signs',
        schema: { type: 'string' },
      },
    ],
    requestBody: {
      required: true,
      description: "Calendly's webhook envelope, read byte-exact (the signature covers the raw bytes)",
      content: json(ref('CalendlyDelivery')),
    },
    responses: {
      200: ok('Verified and stored in JetStream (or a repeat of a delivery already stored)', ref('DeliveryStored')),
      400: problem(
        "A genuine signature over a body that is not JSON, or not Calendly's `{event, payload}` envelope",
        refusalCodes(400),
      ),
      401: problem('No, an unreadable or a bad signature; a stale or future timestamp', refusalCodes(401)),
      403: problem('A genuine signature over a delivery this hook may not carry', refusalCodes(403)),
      404: problem('No active hook has this callback URL', refusalCodes(404)),
      413: problem('The body is larger than WEBHOOK_MAX_BODY_BYTES', ['payload_too_large']),
      415: problem('Content-Type is not application/json', ['unsupported_media_type']),
      503: unavailable(['subscription_unavailable', 'nats_unavailable']),
    },
  };
}

const meetingSchema: SchemaObject = object({
  id: { type: 'string' },
  scheduledEventUri: { type: 'string' },
  name: { type: 'string' },
  eventTypeUri: { type: 'string' },
  status: { enum: ['active', 'canceled', 'unknown'] },
  startTime: nullableDateTime,
  endTime: nullableDateTime,
  location: nullable(object({ type: { type: 'string' }, location: { type: 'string' }, joinUrl: { type: 'string' } })),
  cancellation: nullable(ref('Cancellation')),
  invitees: { type: 'array', items: ref('Invitee') },
  createdAt: nullableDateTime,
  updatedAt: nullableDateTime,
});

const schemas: Record<string, SchemaObject> = {
  Problem: object(
    { error: { type: 'string', description: 'A stable snake_case code' }, message: { type: 'string' } },
    'Every refusal: a stable code to branch on and a message safe to show',
  ),
  CalendlyDelivery: {
    type: 'object',
    description: "Calendly's webhook envelope",
    properties: {
      event: { type: 'string', examples: ['invitee.created'] },
      created_at: { type: 'string' },
      created_by: { type: 'string' },
      payload: { type: 'object' },
    },
    required: ['event', 'payload'],
  },
  DeliveryStored: object({ status: { enum: ['stored', 'duplicate'] } }),
  Health: object({ status: { const: 'ok' } }),
  Readiness: object({
    ready: { type: 'boolean' },
    checks: object({
      shutdown: { enum: ['running', 'stopping'] },
      nats: { enum: ['up', 'down'] },
      subscription: { enum: ['serving', 'not_serving'] },
    }),
  }),
  Webhook: object({
    state: { enum: [...webhookStateNames] },
    events: { type: 'array', items: { type: 'string' } },
    signingKeySource: { enum: ['subscription', 'application', null] },
    createdAt: nullableDateTime,
    lastVerifiedAt: nullableDateTime,
    lastDeliveryAt: nullableDateTime,
    lastError: nullableString,
    lastRefusal: nullable(ref('WebhookRefusal')),
  }),
  WebhookRefusal: object(
    {
      at: { type: 'string', format: 'date-time' },
      error: { type: 'string', description: 'the `error` calsync answered, e.g. `signature_mismatch`' },
    },
    'The last delivery to this webhook calsync refused (its signature, timestamp or payload); recorded at most every few seconds, so deliveries that arrive but fail show here.',
  ),
  Connection: object(
    {
      connected: { type: 'boolean' },
      calendlyUserUri: nullableString,
      calendlyOrganizationUri: nullableString,
      kind: { enum: ['oauth', 'personal_token', null] },
      state: { enum: ['active', 'reauth_required', null] },
      connectedAt: nullableDateTime,
      webhook: nullable(ref('Webhook')),
      sync: nullable(ref('SyncState')),
    },
    "The user's Calendly connection; never a token. Not connected: `connected: false` and nulls",
  ),
  SyncState: object(
    {
      state: { enum: [...syncStateNames] },
      reason: { enum: [...degradedReasons, null] },
      detail: nullableString,
      mode: { enum: [...syncModeNames, null] },
      modeReason: nullableString,
      import: nullable(ref('Import')),
    },
    'How the meetings are kept in sync: `importing` (the import on connect is queued or running), `live`, ' +
      '`degraded` (see `reason`: the import failed, or the webhook is not active) or `reauth_required` ' +
      '(Calendly refused the refresh token: connect again). `mode`: how changes arrive (webhook or polling), and why',
  ),
  Import: object(
    {
      status: { enum: [...importStatusNames] },
      eventsImported: { type: 'integer', minimum: 0 },
      inviteesImported: { type: 'integer', minimum: 0 },
      requestedAt: nullableDateTime,
      startedAt: nullableDateTime,
      completedAt: nullableDateTime,
      pausedUntil: nullableDateTime,
      error: nullableString,
    },
    "The import on connect: what Calendly already held, fetched through the same path as webhooks. `pausedUntil`: waiting for the user's Calendly rate-limit window",
  ),
  Cancellation: object({
    canceledBy: { type: 'string' },
    reason: { type: 'string' },
    cancelerType: { type: 'string' },
    canceledAt: nullableDateTime,
  }),
  Invitee: object({
    uri: { type: 'string' },
    name: { type: 'string' },
    email: { type: 'string' },
    status: { enum: ['active', 'canceled', 'unknown'] },
    timezone: { type: 'string' },
    answers: {
      type: 'array',
      items: object({ question: { type: 'string' }, answer: { type: 'string' }, position: { type: 'integer' } }),
    },
    cancellation: nullable(ref('Cancellation')),
    rescheduled: { type: 'boolean' },
    oldInviteeUri: nullableString,
    newInviteeUri: nullableString,
    noShow: { type: 'boolean' },
    noShowAt: nullableDateTime,
    createdAt: nullableDateTime,
    updatedAt: nullableDateTime,
  }),
  Meeting: meetingSchema,
  MeetingPage: object({
    meetings: { type: 'array', items: ref('Meeting') },
    nextCursor: { ...nullableString, description: 'Pass as `cursor` for the next page; null on the last' },
  }),
  MeetingChanged: object(
    {
      changeId: { type: 'string' },
      kind: { enum: ['created', 'updated', 'canceled', 'rescheduled', 'no_show', 'removed', 'unknown'] },
      meetingId: { type: 'string' },
      scheduledEventUri: { type: 'string' },
      changedAt: nullableDateTime,
      meeting: nullable(ref('Meeting')),
    },
    'The `data` of a `meeting.changed` event on GET /api/meetings/events',
  ),
  DeliveryRecord: object(
    {
      deliveryKey: { type: 'string', description: 'Stable across Calendly retries of one delivery' },
      eventType: { type: 'string', examples: ['invitee.created'] },
      outcome: { enum: ['applied', 'duplicate', 'ignored', 'dead_lettered', 'unknown'] },
      receivedAt: nullableDateTime,
      recordedAt: nullableDateTime,
      latencyMs: { type: 'integer', minimum: 0, description: 'From receipt at the gateway to the outcome' },
    },
    'One received delivery: when, what, what became of it',
  ),
  DeliveryPage: object({
    deliveries: { type: 'array', items: ref('DeliveryRecord') },
    nextCursor: { ...nullableString, description: 'Pass as `cursor` for the next page; null on the last' },
  }),
  StreamToken: object({
    token: { type: 'string' },
    expiresAt: dateTime,
    url: { type: 'string', description: 'Open it with EventSource' },
  }),
  AuthorizeUrl: object({ authorizeUrl: { type: 'string', format: 'uri' } }),
};

const location = (description: string): ResponseObject => ({
  description,
  // Koa writes a short "Redirecting to ..." for clients that show bodies.
  content: { 'text/html': { schema: { type: 'string' } }, 'text/plain': { schema: { type: 'string' } } },
  headers: {
    'X-Request-Id': requestIdHeader,
    Location: { description: 'Where the browser goes next', required: true, schema: { type: 'string', format: 'uri' } },
  },
});

/** The gateway's HTTP API (OpenAPI 3.1), served at GET /openapi.json. */
export const openApiDocument: OpenAPIObject = {
  openapi: '3.1.1',
  info: {
    title: 'calsync gateway',
    version: '1.0.0',
    description:
      "calsync's HTTP edge: Calendly's webhook deliveries, the platform user's Calendly connection and meetings, " +
      'and the probes. Every refusal is JSON `{error, message}`; every answer carries `X-Request-Id`.',
  },
  tags: [
    {
      name: 'deliveries',
      description: 'Calendly webhook deliveries (Calendly calls these), and the log of them a user reads',
    },
    { name: 'connection', description: "The signed-in user's Calendly connection" },
    { name: 'meetings', description: "The signed-in user's meetings and their live changes" },
    { name: 'operations', description: 'Probes, metrics and this document' },
  ],
  components: {
    securitySchemes: {
      platformJwt: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: "The platform's JWT; `sub` is the user id. Must carry `exp` and `iat`",
      },
    },
    schemas,
  },
  paths: {
    '/webhooks/calendly/{hookId}': {
      post: deliveryOperation(
        'Take a delivery on a per-user callback URL',
        'Answered 2xx only once JetStream acknowledged it; every refusal is a 4xx, never stored. A method other than POST gets 405.',
        [{ name: 'hookId', in: 'path', required: true, schema: { type: 'string' } }],
      ),
    },
    '/api/calendly/webhook': {
      post: deliveryOperation(
        "Take a delivery on the seed's single callback URL",
        'The user is resolved from the payload (`created_by`); a per-user delivery sent here is 404.',
        [],
      ),
    },
    '/api/calendly/connect': {
      get: userOperation({
        tags: ['connection'],
        summary: "Start an OAuth connect from the user's browser",
        description:
          'Sets the connect cookie that binds the callback to this browser. With `Accept: application/json` the ' +
          'authorize URL comes as JSON so a single-page app can navigate itself.',
        responses: {
          200: ok("Calendly's authorize URL (Accept: application/json)", ref('AuthorizeUrl')),
          302: location("Redirect to Calendly's authorize page"),
        },
      }),
    },
    '/api/calendly/oauth/callback': {
      get: {
        tags: ['connection'],
        summary: "Calendly's OAuth redirect back",
        description:
          'No JWT: the single-use state names the user, the connect cookie the browser. Always a redirect to ' +
          '`APP_URL?calendly=connected` or `APP_URL?calendly=error&reason=<reason>`.',
        parameters: [
          { name: 'code', in: 'query', schema: { type: 'string' } },
          { name: 'state', in: 'query', schema: { type: 'string' } },
          { name: 'error', in: 'query', schema: { type: 'string' } },
        ],
        responses: { 302: location('Back to the app, connected or with a reason') },
      },
    },
    '/api/calendly/token': {
      post: userOperation({
        tags: ['connection'],
        summary: 'Connect with a Calendly personal access token',
        requestBody: {
          required: true,
          content: json(object({ token: { type: 'string', minLength: 1, maxLength: 4096 } })),
        },
        responses: {
          200: ok('Connected; the connection and its webhook', ref('Connection')),
          400: problem('Not a JSON object with a token, or Calendly refused the token', [
            'invalid_request',
            'malformed_json',
            'token_rejected',
          ]),
          409: problem('This Calendly account is connected to another user', ['account_in_use']),
          413: problem('The body is over 16 KiB', ['payload_too_large']),
          415: problem('Content-Type is not application/json', ['unsupported_media_type']),
        },
      }),
    },
    '/api/calendly/connection': {
      get: userOperation({
        tags: ['connection'],
        summary: "The user's Calendly connection and webhook",
        responses: { 200: ok('The connection (connected or not)', ref('Connection')) },
      }),
      delete: userOperation({
        tags: ['connection'],
        summary: 'Disconnect: remove the webhooks at Calendly, then the credentials; with purge=true, forget the user',
        description:
          'With `purge=true` every service also deletes everything it holds of the user (meetings, invitees, ' +
          "imports, delivery log, webhook rows, tokens) and their messages in calsync's streams are erased. " +
          'Idempotent: after a 503, send it again. A user calsync never knew gets 204 and nothing changes.',
        parameters: [
          {
            name: 'purge',
            in: 'query',
            description: '`true`: also forget everything calsync holds of the user',
            schema: { enum: ['true', 'false'], default: 'false' },
          },
        ],
        responses: {
          204: {
            description: 'Disconnected, and forgotten with purge=true (also when there was nothing to do)',
            headers: { 'X-Request-Id': requestIdHeader },
          },
          400: problem('A parameter is wrong, repeated or unknown; nothing was changed', ['invalid_request']),
        },
      }),
    },
    '/api/meetings': {
      get: userOperation({
        tags: ['meetings'],
        summary: "The user's meetings, newest first, cursor-paged",
        parameters: [
          { name: 'from', in: 'query', description: 'ISO 8601 date or date-time', schema: { type: 'string' } },
          { name: 'to', in: 'query', description: 'ISO 8601 date or date-time', schema: { type: 'string' } },
          { name: 'status', in: 'query', schema: { enum: ['active', 'canceled'] } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          { name: 'cursor', in: 'query', description: 'As given in `nextCursor`', schema: { type: 'string' } },
        ],
        responses: {
          200: ok('A page of meetings', ref('MeetingPage')),
          400: problem('A parameter (named in the message) is wrong, repeated or unknown', ['invalid_request']),
        },
      }),
    },
    '/api/deliveries': {
      get: userOperation({
        tags: ['deliveries'],
        summary: "The user's delivery log: the Calendly deliveries calsync received for them, newest first",
        description:
          'What became of each delivery and how long it took from receipt to applied; never its payload. Kept ' +
          "for DELIVERY_LOG_RETENTION_DAYS (meetings). A repeat Calendly sent within JetStream's ten-minute " +
          'duplicate window is dropped before it is logged.',
        parameters: [
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          { name: 'cursor', in: 'query', description: 'As given in `nextCursor`', schema: { type: 'string' } },
        ],
        responses: {
          200: ok('A page of deliveries', ref('DeliveryPage')),
          400: problem('A parameter (named in the message) is wrong, repeated or unknown', ['invalid_request']),
        },
      }),
    },
    '/api/meetings/{id}': {
      get: userOperation({
        tags: ['meetings'],
        summary: 'One meeting of the user',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: ok('The meeting', ref('Meeting')),
          404: problem("No such meeting (another user's looks exactly the same)", ['not_found']),
        },
      }),
    },
    '/api/meetings/events/token': {
      post: userOperation({
        tags: ['meetings'],
        summary: 'A short-lived stream token to open the events stream with EventSource',
        responses: { 201: ok('The stream token', ref('StreamToken')) },
      }),
    },
    '/api/meetings/events': {
      get: {
        tags: ['meetings'],
        summary: "The user's meeting changes as Server-Sent Events",
        description:
          'Events `meeting.changed` (`data` is a MeetingChanged, `id` a cursor) and `resync` (re-list the ' +
          'meetings); `: heartbeat` comments every 15 s. Resume with `Last-Event-ID` or `lastEventId`.',
        security: [{ platformJwt: [] }, {}],
        parameters: [
          {
            name: 'token',
            in: 'query',
            description: 'A stream token from POST /api/meetings/events/token (or send the JWT as a bearer header)',
            schema: { type: 'string' },
          },
          { name: 'lastEventId', in: 'query', schema: { type: 'string' } },
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } },
        ],
        responses: {
          200: {
            description: 'The event stream',
            headers: { 'X-Request-Id': requestIdHeader },
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          400: problem('The event id is not one this stream sent', ['invalid_request']),
          401: problem('A missing, tampered or expired stream token or JWT', ['unauthorized'], {
            'WWW-Authenticate': { description: 'Bearer challenge', required: true, schema: { type: 'string' } },
          }),
          503: upstreamUnavailable,
        },
      },
    },
    '/healthz': {
      get: {
        tags: ['operations'],
        summary: 'Liveness',
        responses: { 200: ok('The process serves', ref('Health')) },
      },
    },
    '/readyz': {
      get: {
        tags: ['operations'],
        summary: 'Readiness: not stopping, NATS connected, subscription SERVING',
        responses: {
          200: ok('Ready', ref('Readiness')),
          503: ok('Not ready; `checks` names what fails', ref('Readiness')),
        },
      },
    },
    '/metrics': {
      get: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        responses: {
          200: {
            description: 'Prometheus text exposition',
            headers: { 'X-Request-Id': requestIdHeader },
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    '/openapi.json': {
      get: {
        tags: ['operations'],
        summary: 'This document',
        responses: {
          200: ok('OpenAPI 3.1', {
            type: 'object',
            properties: { openapi: { type: 'string', pattern: '^3\\.1\\.' }, paths: { type: 'object' } },
            required: ['openapi', 'paths'],
          }),
        },
      },
    },
  },
};

/** `/meetings/:id` (a Koa route) as OpenAPI writes it: `/meetings/{id}`. */
export function openApiPath(koaPath: string): string {
  return koaPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
