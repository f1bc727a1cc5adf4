import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../logger';

/** A real service logger whose lines are kept in memory, to assert on what was (not) logged. */
export function captureLogger(service = 'test', level = 'debug'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { log: createLogger({ service, level, destination }), lines };
}
