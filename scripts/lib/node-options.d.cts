/** NODE_OPTIONS for a service's `heap` block of the chart's values ('' when it sets nothing). */
export function nodeOptionsOfHeap(
  heap: { maxOldSpaceMb?: number | null; maxSemiSpaceMb?: number | null } | undefined,
): string;
/** `{NODE_OPTIONS}` for `service` as deploy/helm/calsync/values.yaml sets it, or `{}`. */
export function nodeOptionsEnv(rootDir: string, service: string): { NODE_OPTIONS?: string };
