import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Field names whose values are secrets wherever they appear in a log line. */
const secretFields = [
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'personalAccessToken',
  'personal_access_token',
  'signingKey',
  'signing_key',
  'clientSecret',
  'client_secret',
  'secret',
  'password',
  'authorization',
  'code_verifier',
  'codeVerifier',
  '["calendly-webhook-signature"]',
  'signatureHeader',
  'signature_header',
];

/** The pino redaction paths: each secret field at the top level and one or two levels down. */
export const redactedPaths: string[] = secretFields.flatMap((field) => {
  const joined = field.startsWith('[') ? field : `.${field}`;
  return [field, `*${joined}`, `*.*${joined}`];
});

/** The service's one logger: JSON lines, secrets redacted. Create once in main and pass down. */
export function createLogger(options: {
  service: string;
  level?: string;
  destination?: pino.DestinationStream;
}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service },
    redact: { paths: redactedPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
