import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { waitFor } from '@calsync/service-kit/testing';
import { HttpError } from './http-error';
import { mediaTypeOf, parseJsonObject, readRawBody, requireJsonContentType } from './raw-body';

let server: Server;
let port: number;
const limit = 64;
/** What each request's read ended with, by its X-Probe header. */
const outcomes = new Map<string, string>();

beforeAll(async () => {
  // Echoes the body it read (base64) or the HttpError it got, as JSON.
  server = createServer((req, res) => {
    const probe = String(req.headers['x-probe'] ?? '');
    outcomes.set(probe, 'reading');
    readRawBody(req, limit).then(
      (body) => {
        outcomes.set(probe, `read ${body.length}`);
        res.writeHead(200).end(JSON.stringify({ body: body.toString('base64') }));
      },
      (error: HttpError) => {
        outcomes.set(probe, `${error.status} ${error.message}`);
        res.writeHead(error.status, error.headers).end(JSON.stringify({ error: error.code, message: error.message }));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Sends `chunks` one by one; with `length` it announces that Content-Length, else it streams chunked. */
function send(chunks: Buffer[], length?: number): Promise<{ status: number; body: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        headers: length === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(parts).toString()) as Record<string, string>,
          }),
        );
      },
    );
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('readRawBody', () => {
  it('returns the bytes exactly as sent, whitespace, key order and invalid UTF-8 included', async () => {
    const body = Buffer.concat([Buffer.from('{ "b":1,\n  "a" : "\u00e9"  }'), Buffer.from([0xff, 0xfe])]);
    const answer = await send([body.subarray(0, 5), body.subarray(5)], body.length);
    expect(answer.status).toBe(200);
    expect(Buffer.from(answer.body.body!, 'base64').equals(body)).toBe(true);
  });

  it('reads a chunked body up to the limit', async () => {
    const body = Buffer.alloc(limit, 'x');
    const answer = await send([body.subarray(0, 10), body.subarray(10)]);
    expect(answer.status).toBe(200);
    expect(Buffer.from(answer.body.body!, 'base64').length).toBe(limit);
  });

  it('refuses with 413 from Content-Length alone, before reading', async () => {
    const answer = await send([], limit + 1);
    expect(answer).toEqual({
      status: 413,
      body: { error: 'payload_too_large', message: `the request body exceeds ${limit} bytes` },
    });
  });

  it('refuses with 400, and answers nothing it cannot, when the client goes away mid-body', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nX-Probe: gone\r\nContent-Length: 50\r\n\r\n{"partial":');
    await waitFor(() => outcomes.get('gone') === 'reading');
    socket.destroy();
    await waitFor(() => outcomes.get('gone') !== 'reading');
    expect(outcomes.get('gone')).toBe('400 the request body could not be read');
  });

  it('reads an empty body', async () => {
    const answer = await send([], 0);
    expect(answer).toEqual({ status: 200, body: { body: '' } });
  });

  it('refuses with 413 a chunked body that grows past the limit', async () => {
    const answer = await send([Buffer.alloc(40, 'x'), Buffer.alloc(40, 'y')]);
    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe('payload_too_large');
  });
});

describe('content type and JSON checks', () => {
  it('accepts application/json with parameters and +json types, case-insensitively', () => {
    expect(() => requireJsonContentType('application/json')).not.toThrow();
    expect(() => requireJsonContentType('Application/JSON; charset=utf-8')).not.toThrow();
    expect(() => requireJsonContentType('application/vnd.calendly+json')).not.toThrow();
    expect(mediaTypeOf(' text/plain ; charset=x')).toBe('text/plain');
  });

  it.each([
    undefined,
    '',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonp',
  ])('refuses %p with 415', (contentType) => {
    expect(() => requireJsonContentType(contentType)).toThrow(expect.objectContaining({ status: 415 }));
  });

  it('parses a JSON object and refuses anything else with 400', () => {
    expect(parseJsonObject(Buffer.from('{"token":"x"}'))).toEqual({ token: 'x' });
    for (const body of ['', '{', '[1]', '"x"', 'null', '{"a":1}garbage']) {
      expect(() => parseJsonObject(Buffer.from(body))).toThrow(
        expect.objectContaining({ status: 400, code: 'malformed_json' }),
      );
    }
  });
});
