/** How many items a page of a list may hold. */
export interface PageSizeBounds {
  /** When the caller asks for none (0, or absent: proto3's unset). */
  defaultSize: number;
  maxSize: number;
}

/**
 * The page size a list uses for what its caller asked: the default for 0 or nothing, else a
 * whole number from 1 to the bound. Anything else is refused with `invalid`, each service's own
 * domain error, always in the same words.
 */
export function pageSizeOf(
  asked: number | undefined,
  bounds: PageSizeBounds,
  invalid: (message: string) => Error,
): number {
  const size = asked === undefined || asked === 0 ? bounds.defaultSize : asked;
  if (!Number.isInteger(size) || size < 1 || size > bounds.maxSize)
    throw invalid(`page_size must be between 1 and ${bounds.maxSize}`);
  return size;
}
