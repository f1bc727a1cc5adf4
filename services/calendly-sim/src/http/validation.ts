import type { z } from 'zod';
import { invalidArgument } from './errors';

/** Parses a request body or query with a schema; a mismatch is Calendly's 400 naming each parameter. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  throw invalidArgument(
    result.error.issues.map((issue) => ({
      parameter: issue.path.length > 0 ? issue.path.join('.') : undefined,
      message: issue.code === 'invalid_type' && issue.input === undefined ? "can't be blank" : issue.message,
    })),
  );
}
