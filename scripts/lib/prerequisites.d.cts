// Types for prerequisites.cjs, for the TypeScript end-to-end tests.
export const chromiumPath: string;
export function missingPrerequisites(purpose: 'test' | 'dev'): string[];
