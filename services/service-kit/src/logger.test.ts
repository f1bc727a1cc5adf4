import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { GrpcError } from './errors';
import { batchedOutput, createLogger } from './logger';
import { captureLogger } from './testing/log-capture';
import { eventually } from './testing/polling';

describe('logger', () => {
  it('redacts tokens, signing keys and secret headers wherever they appear', () => {
    const { log, lines } = captureLogger();
    log.info(
      {
        token: 'pat-secret-1',
        access_token: 'at-secret-2',
        connection: { refreshToken: 'rt-secret-3' },
        req: { headers: { authorization: 'Bearer jwt-secret-4', 'calendly-webhook-signature': 't=1,v1=sig-secret-5' } },
        subscription: { signing_key: 'sk-secret-6' },
        userId: 'user-7',
      },
      'something happened',
    );
    const line = lines.join('\n');
    for (const secret of [
      'pat-secret-1',
      'at-secret-2',
      'rt-secret-3',
      'jwt-secret-4',
      'sig-secret-5',
      'sk-secret-6',
    ]) {
      expect(line).not.toContain(secret);
    }
    expect(line).toContain('user-7');
    expect(line).toContain('[redacted]');
  });

  it("redacts secrets in child bindings, in lists, and in what an error carries, never changing the caller's objects", () => {
    const { log, lines } = captureLogger();
    const fields = {
      hooks: [{ hookId: 'h1', signingKey: 'sk-secret-8' }],
      deep: { a: { b: { token: 'out-of-reach-9' } } },
    };
    const failure = Object.assign(new Error('upstream 500'), {
      status: 500,
      request: { authorization: 'Bearer jwt-secret-10' },
    });
    log.child({ token: 'child-secret-11', requestId: 'r1' }).error({ ...fields, err: failure }, 'failed');
    const line = lines.join('\n');
    for (const secret of ['sk-secret-8', 'jwt-secret-10', 'child-secret-11']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({ requestId: 'r1', hooks: [{ hookId: 'h1', signingKey: '[redacted]' }] });
    // Three levels down, as pino's `*.*.field` paths did; a fourth is not searched.
    expect(line).toContain('out-of-reach-9');
    expect(fields.hooks[0]!.signingKey).toBe('sk-secret-8');
    expect(failure.request.authorization).toBe('Bearer jwt-secret-10');
  });

  it('logs an expected refusal as one line without a stack trace', () => {
    const { log, lines } = captureLogger();
    // What a grpc-js client throws when the server refuses: an Error with code, details, metadata.
    const refused = Object.assign(new Error('16 UNAUTHENTICATED: the token was refused'), {
      code: status.UNAUTHENTICATED,
      details: 'the token was refused',
      metadata: new Metadata(),
    });
    log.warn({ err: refused }, 'connect refused');
    log.info({ err: new GrpcError(status.NOT_FOUND, 'no such meeting') }, 'lookup refused');
    log.info({ err: Object.assign(new Error('Calendly answered 401'), { status: 401 }) }, 'calendly refused');

    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('stack');
    expect(JSON.parse(lines[0]!).err).toEqual({
      type: 'Error',
      message: '16 UNAUTHENTICATED: the token was refused',
      code: 'UNAUTHENTICATED',
    });
    expect(JSON.parse(lines[1]!).err).toEqual({ type: 'GrpcError', message: 'no such meeting', code: 'NOT_FOUND' });
    expect(JSON.parse(lines[2]!).err).toEqual({ type: 'Error', message: 'Calendly answered 401', status: 401 });
  });

  it('keeps the stack and cause of what nobody expected', () => {
    const { log, lines } = captureLogger();
    const broken = Object.assign(new Error('13 INTERNAL: internal error'), { code: status.INTERNAL });
    log.error({ err: new Error('request failed', { cause: broken }) }, 'request failed');
    log.error({ err: Object.assign(new Error('upstream 502'), { status: 502 }) }, 'upstream failed');
    const [first, second] = lines.map((line) => JSON.parse(line).err);
    expect(first.stack).toContain('logger.test');
    expect(first.message).toBe('request failed: 13 INTERNAL: internal error');
    expect(second.stack).toContain('upstream 502');
  });
});

describe('the batched stdout', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'calsync-logger-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A logger writing through batchedOutput into a file, and what the file holds now. */
  function fileLogger() {
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    const destination = batchedOutput(fd);
    const log = createLogger({ service: 'test', destination });
    const written = () =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).msg);
    // Flushed before the file closes: the destination's timer must find nothing left to write.
    const close = () => {
      destination.flush();
      closeSync(fd);
    };
    return { log, destination, written, close };
  }

  it('holds info lines, then writes them with the first warning, in order', () => {
    const { log, written, close } = fileLogger();
    log.info('one');
    log.info('two');
    expect(written()).toEqual([]);
    log.warn('three');
    expect(written()).toEqual(['one', 'two', 'three']);
    close();
  });

  it('writes what it holds when asked, before calling back, and within its wait bound otherwise', async () => {
    const { log, destination, written, close } = fileLogger();
    log.info('ready');
    let calledBack: string[] | undefined;
    destination.flush(() => (calledBack = written()));
    expect(calledBack).toEqual(['ready']);
    log.info('later');
    expect(written()).toEqual(['ready']);
    // Nothing else is logged or flushed: the timer writes it (every stdoutBatchMaxWaitMs).
    await eventually(() => expect(written()).toEqual(['ready', 'later']));
    close();
  });

  it('writes a full batch at once', () => {
    const { log, written, close } = fileLogger();
    const padding = 'x'.repeat(200);
    for (let i = 0; i < 60; i += 1) log.info({ padding }, `line ${i}`);
    // 60 lines of ~300 bytes pass 8 KiB: the first batch is out without a flush or a timer.
    expect(written().length).toBeGreaterThan(0);
    expect(written()).toEqual(Array.from({ length: written().length }, (_, i) => `line ${i}`));
    close();
  });

  it('writes what a process still holds when it exits', () => {
    const script = `
      const { createLogger } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
      const log = createLogger({ service: 'exit-test' });
      log.info('held until exit');
      process.exit(0);
    `;
    const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(
      output
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).msg),
    ).toEqual(['held until exit']);
  });
});
