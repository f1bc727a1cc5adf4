import { z } from 'zod';
import { HttpError } from './http-error';

/** `?limit=`: a whole number from 1 to `max`. */
export const limitParameter = (max: number) =>
  z
    .string()
    .regex(/^[1-9]\d{0,5}$/, `must be a whole number from 1 to ${max}`)
    .transform(Number)
    .refine((value) => value <= max, `must be a whole number from 1 to ${max}`)
    .optional();

/** `?cursor=`: opaque here; the service that issued it parses every field and names a bad one. */
export const cursorParameter = z.string().max(1024, 'is not one this API gave out').optional();

/**
 * A route's query parameters through a strict schema: an unknown parameter, a repeated one or a
 * bad value is a 400 naming it (and the route does nothing). Empty values count as absent.
 */
export function parseQueryParameters<T>(
  schema: z.ZodType<T>,
  query: Record<string, string | string[] | undefined>,
  known: readonly string[],
): T {
  const present = Object.fromEntries(Object.entries(query).filter(([, value]) => value !== undefined && value !== ''));
  for (const [name, value] of Object.entries(present)) {
    if (Array.isArray(value)) throw new HttpError(400, 'invalid_request', `"${name}" may be given once`);
  }
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown parameter ${issue.keys.map((key) => `"${key}"`).join(', ')} (known: ${known.join(', ')})`
      : `"${String(issue.path[0])}" ${issue.message}`;
  throw new HttpError(400, 'invalid_request', message);
}
