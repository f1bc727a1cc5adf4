#!/usr/bin/env node
import {
  identityAdminV1,
  identityV1,
  meetingsAdminV1,
  meetingsV1,
  subscriptionAdminV1,
  subscriptionV1,
} from '@calsync/proto';
import { createGrpcClient, GrpcStatus, type GrpcSecurity } from '@calsync/service-kit';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  listConnections,
  listDeadLetters,
  listHooks,
  purge,
  reconcile,
  replayDeadLetters,
  rotateKeys,
  status,
  userIdArgument,
  type CommandResult,
} from './commands';
import { addressOf, loadCliConfig, operatorSecurity, UsageError, type CliConfig } from './config';

/** Exit codes: documented in the README, stable for scripts. */
export const exitCodes = { ok: 0, failure: 1, usage: 2 } as const;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const integer = (min: number, max: number) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
  return Number(value);
};

/**
 * The `calsync` program. Each command talks to the services' gRPC APIs only, as
 * calsync-operator; `run` resolves the exit code instead of exiting, so tests and the bin agree.
 */
export async function run(
  argv: string[],
  environment: Record<string, string | undefined> = process.env,
  io: Io = { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) },
): Promise<number> {
  let config: CliConfig | undefined;
  let security: GrpcSecurity | undefined;
  const opened: { close(): void }[] = [];
  const connect = () => {
    config ??= loadCliConfig(environment);
    security ??= operatorSecurity(config);
    return { config, security };
  };
  const timeoutMs = () => program.opts<{ timeout: number }>().timeout;
  const clientFor = <D extends Parameters<typeof createGrpcClient>[0]>(
    definition: D,
    variable: 'IDENTITY_ADDR' | 'SUBSCRIPTION_ADDR' | 'MEETINGS_ADDR',
    defaultTimeoutMs?: number,
  ) => {
    const { config: cfg, security: sec } = connect();
    const explicit = program.getOptionValueSource('timeout') !== 'default';
    const client = createGrpcClient(definition, addressOf(cfg, variable), {
      security: sec,
      defaultTimeoutMs: explicit || defaultTimeoutMs === undefined ? timeoutMs() : defaultTimeoutMs,
    });
    opened.push(client);
    return client;
  };
  let exitCode: number = exitCodes.ok;
  const print = (result: CommandResult) => {
    const json = program.opts<{ json?: boolean }>().json;
    io.out(json ? `${JSON.stringify(result.json, null, 2)}\n` : `${result.lines.join('\n')}\n`);
    if (result.failed) exitCode = exitCodes.failure;
  };

  const program = new Command('calsync')
    .description("calsync's operator commands. They call the services' gRPC APIs as calsync-operator (mutual TLS).")
    .option('--json', 'print the result as JSON')
    .addOption(new Option('--timeout <ms>', 'deadline of each call').argParser(integer(100, 3_600_000)).default(30_000))
    .addHelpText(
      'after',
      `
Environment: IDENTITY_ADDR, SUBSCRIPTION_ADDR, MEETINGS_ADDR (host:port) as each command needs;
GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE (a certificate with CN calsync-operator), GRPC_TLS_CA_FILE;
or GRPC_PLAINTEXT=true against services that run without TLS (development only).
Exit codes: 0 done, 1 a call failed or the result reports a failure, 2 usage or configuration.`,
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();

  program
    .command('status')
    .description("a user's Calendly connection (identity), and webhooks, sync mode and sync state (subscription)")
    .argument('<user>', 'platform user id', userIdArgument)
    .action(async (userId: string) => {
      print(
        await status(
          {
            identity: clientFor(identityV1.IdentityServiceService, 'IDENTITY_ADDR'),
            subscription: clientFor(subscriptionV1.SubscriptionServiceService, 'SUBSCRIPTION_ADDR'),
          },
          userId,
        ),
      );
    });

  program
    .command('reconcile')
    .description(
      "make a user's webhooks at Calendly match calsync now (or every user's with --all); exit 1 if any failed",
    )
    .argument('[user]', 'platform user id', userIdArgument)
    .option('--all', 'every connected user')
    .action(async (userId: string | undefined, options: { all?: boolean }) => {
      if (Boolean(userId) === Boolean(options.all)) throw new UsageError('give a user id or --all (one of them)');
      print(
        await reconcile(
          { subscription: clientFor(subscriptionV1.SubscriptionServiceService, 'SUBSCRIPTION_ADDR') },
          userId ?? '',
        ),
      );
    });

  program
    .command('purge')
    .description(
      'forget a user in every service: webhooks (at Calendly too), tokens, meetings, invitees, inbox, outbox, delivery log, and their messages in the streams',
    )
    .argument('<user>', 'platform user id', userIdArgument)
    .action(async (userId: string) => {
      print(
        await purge(
          {
            subscription: clientFor(subscriptionV1.SubscriptionServiceService, 'SUBSCRIPTION_ADDR'),
            identity: clientFor(identityV1.IdentityServiceService, 'IDENTITY_ADDR'),
            meetings: clientFor(meetingsV1.MeetingsServiceService, 'MEETINGS_ADDR'),
          },
          userId,
        ),
      );
    });

  // The list commands page alike: --limit per call, --cursor to go on, --all-pages to follow every page.
  const paged = (command: Command) =>
    command
      .addOption(new Option('--limit <n>', 'page size').argParser(integer(1, 500)).default(50))
      .option('--cursor <cursor>', 'the next page, as a previous list printed it')
      .option('--all-pages', 'follow every page');
  type PagingOptions = { limit: number; cursor?: string; allPages?: boolean };
  const paging = (options: PagingOptions) => ({
    limit: options.limit,
    cursor: options.cursor ?? '',
    allPages: Boolean(options.allPages),
  });

  paged(
    program
      .command('connections')
      .description(
        "every user's Calendly connection (identity), with its last refresh and last refresh error; e.g. --state reauth_required",
      )
      .option('--state <state>', 'only this state: active or reauth_required'),
  ).action(async (options: PagingOptions & { state?: string }) => {
    print(
      await listConnections(
        { identityAdmin: clientFor(identityAdminV1.IdentityAdminServiceService, 'IDENTITY_ADDR') },
        { ...paging(options), ...(options.state !== undefined ? { state: options.state } : {}) },
      ),
    );
  });

  paged(
    program
      .command('hooks')
      .description(
        "every user's webhooks (subscription) with last delivery and last error; e.g. --state disabled, or --sync-mode polling for the hooks Calendly refused",
      )
      .option('--state <state>', 'only this state: pending, active, disabled, missing, removing or failed')
      .option('--sync-mode <mode>', 'only users synced this way: webhook or polling')
      .option('--user <id>', "only this user's", userIdArgument),
  ).action(async (options: PagingOptions & { state?: string; syncMode?: string; user?: string }) => {
    print(
      await listHooks(
        { subscriptionAdmin: clientFor(subscriptionAdminV1.SubscriptionAdminServiceService, 'SUBSCRIPTION_ADDR') },
        {
          ...paging(options),
          ...(options.state !== undefined ? { state: options.state } : {}),
          ...(options.syncMode !== undefined ? { syncMode: options.syncMode } : {}),
          userId: options.user ?? '',
        },
      ),
    );
  });

  const deadLetters = program.command('dead-letters').description("meetings' dead letters: list and replay");
  paged(
    deadLetters
      .command('list')
      .description('list dead letters, oldest first, a page at a time')
      .option('--user <id>', "only this user's", userIdArgument),
  ).action(async (options: PagingOptions & { user?: string }) => {
    print(
      await listDeadLetters(
        { meetingsAdmin: clientFor(meetingsAdminV1.MeetingsAdminServiceService, 'MEETINGS_ADDR') },
        { ...paging(options), userId: options.user ?? '' },
      ),
    );
  });
  deadLetters
    .command('replay')
    .description('replay dead letters through the normal path (idempotent): by sequence, --user or --all')
    .argument('[sequences...]', 'sequence numbers, as list prints them', (value: string, previous: number[] = []) => [
      ...previous,
      integer(1, Number.MAX_SAFE_INTEGER)(value),
    ])
    .option('--user <id>', "every dead letter of this user's", userIdArgument)
    .option('--all', 'every dead letter')
    .action(async (sequences: number[] | undefined, options: { user?: string; all?: boolean }) => {
      print(
        await replayDeadLetters(
          { meetingsAdmin: clientFor(meetingsAdminV1.MeetingsAdminServiceService, 'MEETINGS_ADDR') },
          { sequences: sequences ?? [], userId: options.user ?? '', all: Boolean(options.all) },
        ),
      );
    });

  // Re-sealing walks every stored secret: its calls get 10 minutes unless --timeout says otherwise.
  const rotationTimeoutMs = 600_000;
  program
    .command('rotate-keys')
    .description(
      "re-seal what identity and subscription store under their active sealing key (deploy/README.md, 'Rotate keys'); exit 1 while anything is left under another key",
    )
    .action(async () => {
      print(
        await rotateKeys({
          identityAdmin: clientFor(identityAdminV1.IdentityAdminServiceService, 'IDENTITY_ADDR', rotationTimeoutMs),
          subscriptionAdmin: clientFor(
            subscriptionAdminV1.SubscriptionAdminServiceService,
            'SUBSCRIPTION_ADDR',
            rotationTimeoutMs,
          ),
        }),
      );
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    }
    if (error instanceof UsageError || error instanceof InvalidArgumentError) {
      io.err(`calsync: ${error.message}\n`);
      return exitCodes.usage;
    }
    io.err(`calsync: ${describeFailure(error)}\n`);
    // The service refused the arguments themselves: a usage problem, like one caught here.
    return (error as { code?: unknown }).code === GrpcStatus.INVALID_ARGUMENT ? exitCodes.usage : exitCodes.failure;
  } finally {
    for (const client of opened) client.close();
  }
}

/** A failed call as one line: the gRPC status name and the service's safe message. */
function describeFailure(error: unknown): string {
  const { code, details, message } = (error ?? {}) as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof code === 'number') {
    const name = GrpcStatus[code] ?? String(code);
    const hint =
      code === GrpcStatus.PERMISSION_DENIED || code === GrpcStatus.UNAUTHENTICATED
        ? " (is the certificate calsync-operator, and signed by the services' CA?)"
        : code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED
          ? ' (is the address right and the service up?)'
          : '';
    return `${name}: ${typeof details === 'string' && details ? details : String(message)}${hint}`;
  }
  return error instanceof Error ? error.message : String(error);
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`calsync: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = exitCodes.failure;
    },
  );
}
