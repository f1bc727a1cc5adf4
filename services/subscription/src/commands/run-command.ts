import { createLogger } from '@calsync/service-kit';

/** Runs a one-off command and exits with the code it resolves; a crash is logged and exits 1. */
export function runCommand(service: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      createLogger({ service }).fatal({ err: error }, 'command failed');
      process.exit(1);
    },
  );
}
