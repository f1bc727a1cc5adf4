import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error';

/**
 * Reads a request body byte-exact, refusing it with 413 as soon as it is known to exceed
 * `limit` (from Content-Length before reading, else while reading), and 400 when the client
 * aborts or sends fewer bytes than it announced. Read with listeners, not an async iterator
 * (which costs promises and stream bookkeeping on every delivery), and a body that arrives in
 * one chunk, as a delivery usually does, is returned as it is, without a copy.
 */
export function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    if (!Number.isSafeInteger(length) || length < 0) {
      return Promise.reject(new HttpError(400, 'bad_request', 'invalid Content-Length'));
    }
    if (length > limit) return Promise.reject(tooLarge(limit));
  }
  // Already read to its end by someone else: nothing more will arrive.
  if (req.readableEnded) return req.complete ? Promise.resolve(Buffer.alloc(0)) : Promise.reject(unreadable());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onFailure);
      req.off('close', onFailure);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        stop();
        // The rest is not read: the answer closes the connection (tooLarge).
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      if (!req.complete) reject(new HttpError(400, 'bad_request', 'the request body ended early'));
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    };
    // An error, or the request closing before its end (the client went away).
    const onFailure = () => {
      stop();
      reject(unreadable());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onFailure);
    req.on('close', onFailure);
  });
}

function unreadable(): HttpError {
  return new HttpError(400, 'bad_request', 'the request body could not be read');
}

function tooLarge(limit: number): HttpError {
  // The unread rest of the body is not worth draining: close the connection after answering.
  return new HttpError(413, 'payload_too_large', `the request body exceeds ${limit} bytes`, { Connection: 'close' });
}

/** The media type of a Content-Type header, lower-case and without parameters. */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Throws 415 unless the request says its body is JSON (application/json or a +json type). */
export function requireJsonContentType(contentType: string | undefined): void {
  const type = mediaTypeOf(contentType);
  if (type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type)) return;
  throw new HttpError(
    415,
    'unsupported_media_type',
    type ? `expected application/json, got ${type}` : 'expected Content-Type: application/json',
  );
}

/** Parses a JSON body that must be an object; 400 otherwise. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'malformed_json', 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'malformed_json', 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
