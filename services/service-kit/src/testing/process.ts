import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A service running as a real child process. */
export interface ServiceProcess {
  child: ChildProcess;
  /** The fields of the service's `ready` log line (e.g. grpcPort, httpPort). */
  ready: Record<string, unknown>;
  /** Every log line so far (JSON text). */
  lines: string[];
  /** SIGTERM and wait for exit (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL at once, as a crash would. */
  kill(): Promise<void>;
}

/**
 * Starts `node <entry>` with `env` and resolves once it logs `ready` (the line every calsync
 * service writes when it serves). Rejects if it exits first or does not get ready in time.
 */
export function spawnService(options: {
  entry: string;
  env: Record<string, string>;
  readyTimeoutMs?: number;
  /** Called with every log line as it is written. */
  onLine?: (line: string) => void;
  /** Keep at most this many lines in `lines` (all by default, for tests that scan them). */
  maxLines?: number;
  /** Node options before the entry, e.g. `--cpu-prof` for a bench's profiles. */
  nodeArgs?: string[];
}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${options.entry} did not get ready in time:\n${lines.slice(-20).join('\n')}`));
    }, options.readyTimeoutMs ?? 30_000);
    const onLine = (line: string) => {
      lines.push(line);
      if (options.maxLines !== undefined && lines.length > options.maxLines) lines.shift();
      options.onLine?.(line);
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === 'ready') {
          clearTimeout(timer);
          resolve({
            child,
            ready: parsed,
            lines,
            stop: async (timeoutMs = 15_000) => {
              if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
              child.kill('SIGTERM');
              const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
              const code = await exited;
              clearTimeout(kill);
              return code;
            },
            kill: async () => {
              if (child.exitCode !== null || child.signalCode !== null) return;
              child.kill('SIGKILL');
              await exited;
            },
          });
        }
      } catch {
        // not a JSON log line
      }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${options.entry} exited with ${code} before it was ready:\n${lines.slice(-20).join('\n')}`));
    });
  });
}
