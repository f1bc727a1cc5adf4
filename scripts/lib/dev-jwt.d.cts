export function signDevJwt(sub: string, secret: string, ttlSeconds?: number): string;
export function devJwtSecret(): string;
export const devJwtTtlSeconds: number;
