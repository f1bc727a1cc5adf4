import { z } from 'zod';

const deliveryFailure = z
  .object({
    subscription: z.string().min(1),
    count: z.number().int().min(0),
    /** skip: the receiver never sees the attempt; send: it does, and its answer is ignored (a lost response). */
    mode: z.enum(['skip', 'send']).default('skip'),
  })
  .strict();

/** `POST /_sim/faults`: each key given replaces that kind of fault; keys left out stay as they are. */
export const faultsSchema = z
  .object({
    fail_deliveries: z.union([deliveryFailure, z.array(deliveryFailure)]),
    api_errors: z
      .object({
        status: z.union([z.literal(429), z.literal(500), z.literal(502), z.literal(503), z.literal(504)]),
        count: z.number().int().min(0),
        /** Only calls whose path starts with this (e.g. `/oauth/token`); every Calendly route when absent. */
        path: z.string().startsWith('/').optional(),
        /** Only calls with this method (e.g. `POST`: a create fails while listing works); every method when absent. */
        method: z.enum(['GET', 'POST', 'PATCH', 'PUT', 'DELETE']).optional(),
      })
      .strict(),
    latency: z
      .object({ api_ms: z.number().int().min(0).max(120_000), delivery_ms: z.number().int().min(0).max(120_000) })
      .partial()
      .strict(),
    clock_offset_ms: z.number().int(),
  })
  .partial()
  .strict();

export type FaultsInput = z.infer<typeof faultsSchema>;

/** Failures a test asks for: they run out as they are used. */
export interface Faults {
  /** Sets failures for subscriptions already resolved to uuids. */
  failDeliveries(entries: { subscriptionUuid: string; count: number; mode: 'skip' | 'send' }[]): void;
  setApiErrors(value: { status: number; count: number; path?: string; method?: string } | undefined): void;
  setLatency(value: { api_ms?: number; delivery_ms?: number }): void;
  /** Uses one injected API error if one applies to this call. */
  takeApiError(path: string, method: string): number | undefined;
  /** Uses one injected delivery failure for this subscription. */
  takeDeliveryFailure(subscriptionUuid: string): 'skip' | 'send' | undefined;
  apiLatencyMs(): number;
  deliveryLatencyMs(): number;
  describe(): Record<string, unknown>;
  clear(): void;
}

export function createFaults(): Faults {
  const deliveries = new Map<string, { remaining: number; mode: 'skip' | 'send' }>();
  let apiErrors: { status: number; remaining: number; path?: string; method?: string } | undefined;
  let latency = { api_ms: 0, delivery_ms: 0 };
  return {
    failDeliveries(entries) {
      for (const entry of entries) {
        if (entry.count === 0) deliveries.delete(entry.subscriptionUuid);
        else deliveries.set(entry.subscriptionUuid, { remaining: entry.count, mode: entry.mode });
      }
    },
    setApiErrors(value) {
      apiErrors =
        value && value.count > 0
          ? { status: value.status, remaining: value.count, path: value.path, method: value.method }
          : undefined;
    },
    setLatency(value) {
      latency = { ...latency, ...value };
    },
    takeApiError(path, method) {
      if (!apiErrors || (apiErrors.path !== undefined && !path.startsWith(apiErrors.path))) return undefined;
      if (apiErrors.method !== undefined && method !== apiErrors.method) return undefined;
      const { status } = apiErrors;
      apiErrors.remaining -= 1;
      if (apiErrors.remaining <= 0) apiErrors = undefined;
      return status;
    },
    takeDeliveryFailure(subscriptionUuid) {
      const entry = deliveries.get(subscriptionUuid);
      if (!entry) return undefined;
      entry.remaining -= 1;
      if (entry.remaining <= 0) deliveries.delete(subscriptionUuid);
      return entry.mode;
    },
    apiLatencyMs: () => latency.api_ms,
    deliveryLatencyMs: () => latency.delivery_ms,
    describe: () => ({
      fail_deliveries: [...deliveries].map(([subscription, entry]) => ({
        subscription,
        count: entry.remaining,
        mode: entry.mode,
      })),
      api_errors: apiErrors
        ? {
            status: apiErrors.status,
            count: apiErrors.remaining,
            path: apiErrors.path ?? null,
            method: apiErrors.method ?? null,
          }
        : null,
      latency: { ...latency },
    }),
    clear() {
      deliveries.clear();
      apiErrors = undefined;
      latency = { api_ms: 0, delivery_ms: 0 };
    },
  };
}
