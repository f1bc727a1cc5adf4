import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createLogger, createStop, listen, type Logger } from '@calsync/service-kit';
import { createBookingLedger } from './bookings/booking-ledger';
import { scheduledEventRoutes } from './bookings/scheduled-event-routes';
import { controlRoutes } from './control/control-routes';
import { createDeliveryEngine } from './delivery/delivery-engine';
import { createFaults } from './faults/faults';
import { createApiGuard } from './http/api-guard';
import { createApp } from './http/app';
import { createClock } from './http/clock';
import { createApiUsage } from './limits/api-usage';
import { createRateLimiter } from './limits/rate-limiter';
import { createStateFile } from './state/state-file';
import { createOAuthServer } from './oauth/oauth-server';
import { oauthRoutes } from './oauth/oauth-routes';
import {
  defaultSettings,
  mergeSettings,
  replaceSettings,
  settingsPatchSchema,
  type SimulatorSettings,
} from './settings/settings';
import { createUserDirectory } from './users/user-directory';
import { userRoutes } from './users/user-routes';
import { createSubscriptionRegistry } from './webhooks/subscription-registry';
import { subscriptionRoutes } from './webhooks/subscription-routes';
import { createWebhookFanout } from './webhooks/webhook-fanout';

/** A running simulator: Calendly's auth host and API host at `url`, plus the /_sim/ control API. */
export interface Simulator {
  url: string;
  port: number;
  /** The live settings: `POST /_sim/settings` changes this object in place. */
  settings: SimulatorSettings;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  settings?: Partial<SimulatorSettings>;
  /** Silent when absent. */
  log?: Logger;
  /** The base of every resource URI, when clients reach the simulator by another name (a container's service name). */
  publicUrl?: string;
  /**
   * Where users, grants, webhook subscriptions and bookings are kept across restarts (`npm run
   * dev`): loaded at start when present, saved every few seconds and at stop. In memory only when absent.
   */
  stateFile?: string;
}

const stateSaveIntervalMs = 3_000;

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts a simulator with empty state. */
export async function startSimulator(options: StartOptions = {}): Promise<Simulator> {
  const log = options.log ?? createLogger({ service: 'calendly-sim', level: 'silent' });
  const patch = settingsPatchSchema.safeParse(options.settings ?? {});
  if (!patch.success) {
    throw new Error(
      `invalid simulator settings: ${patch.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const initial = mergeSettings(defaultSettings, patch.data);
  const settings = mergeSettings(initial, {});

  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
  const server = createServer((req, res) => handle(req, res));
  server.keepAliveTimeout = 5_000;
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, options.port ?? 0, host);
  const baseUrl = (options.publicUrl ?? `http://${urlHost(host)}:${port}`).replace(/\/+$/, '');

  const clock = createClock();
  const users = createUserDirectory({ baseUrl, clock });
  const tokenLimiter = createRateLimiter(clock);
  const apiLimiter = createRateLimiter(clock);
  const apiUsage = createApiUsage();
  const oauth = createOAuthServer({ users, clock, settings, tokenLimiter });
  const faults = createFaults();
  const subscriptions = createSubscriptionRegistry({ baseUrl, clock, settings, users });
  const delivery = createDeliveryEngine({ settings, clock, log, subscriptions, faults });
  const notify = createWebhookFanout({ clock, subscriptions, delivery });
  const ledger = createBookingLedger({ baseUrl, clock, settings, users, notify });
  const guard = createApiGuard({ oauth, limiter: apiLimiter, usage: apiUsage, settings });

  const durable = { users, oauth, subscriptions, ledger };
  const stateFile = options.stateFile ? createStateFile(options.stateFile, baseUrl) : undefined;
  let saveTimer: NodeJS.Timeout | undefined;
  const save = () => stateFile?.save(durable, clock.offsetMs);
  if (stateFile) {
    try {
      const restored = stateFile.load(durable);
      if (restored) clock.offsetMs = restored.clockOffsetMs;
      log.info(
        { stateFile: options.stateFile, restored: restored !== undefined, users: users.all().length },
        'state loaded',
      );
    } catch (error) {
      server.close();
      throw error;
    }
    saveTimer = setInterval(() => {
      try {
        save();
      } catch (error) {
        log.warn({ err: error, stateFile: options.stateFile }, 'saving the simulator state failed; will retry');
      }
    }, stateSaveIntervalMs);
    saveTimer.unref();
  }

  const reset = () => {
    delivery.clear();
    subscriptions.clear();
    ledger.clear();
    oauth.clear();
    users.clear();
    tokenLimiter.clear();
    apiLimiter.clear();
    apiUsage.clear();
    faults.clear();
    clock.offsetMs = 0;
    replaceSettings(settings, initial);
    log.info('state reset');
  };

  const app = createApp({
    log,
    faults,
    routers: [
      oauthRoutes({ oauth, users }),
      userRoutes({ baseUrl, users, guard }),
      subscriptionRoutes({ subscriptions, guard }),
      scheduledEventRoutes({ baseUrl, ledger, guard }),
      controlRoutes({ users, subscriptions, ledger, delivery, faults, clock, settings, oauth, apiUsage, reset }),
    ],
  });
  const callback = app.callback();
  handle = (req, res) => void callback(req, res);
  log.info({ httpPort: port, url: baseUrl }, 'simulator listening');

  const stop = createStop({
    log,
    timeoutMs: 5_000,
    steps: [
      {
        name: 'http',
        run: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      },
      { name: 'delivery', run: () => delivery.close() },
      {
        name: 'state',
        run: async () => {
          clearInterval(saveTimer);
          save();
        },
      },
    ],
  });
  return {
    url: baseUrl,
    port,
    get settings() {
      return settings;
    },
    stop,
  };
}
