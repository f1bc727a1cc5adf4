import { ConfigError, createLogger, exitOnSignals, loadConfig, type Logger } from '@calsync/service-kit';
import { configSchema, settingsFromConfig, type SimConfig } from './config';
import { startSimulator } from './simulator';

/** Starts the simulator as the process does; logs `ready` with its port. */
export async function start(
  config: SimConfig,
  log: Logger = createLogger({ service: 'calendly-sim', level: config.LOG_LEVEL }),
): Promise<{ stop(): Promise<void>; ports: { http: number } }> {
  const simulator = await startSimulator({
    port: config.SIM_PORT,
    host: config.SIM_HOST,
    publicUrl: config.SIM_PUBLIC_URL,
    settings: settingsFromConfig(config),
    log,
  });
  log.info({ httpPort: simulator.port, url: simulator.url }, 'ready');
  return { stop: simulator.stop, ports: { http: simulator.port } };
}

if (require.main === module) {
  let config: SimConfig;
  try {
    config = loadConfig(configSchema);
  } catch (error) {
    const log = createLogger({ service: 'calendly-sim' });
    log.fatal(
      { problems: error instanceof ConfigError ? error.problems : undefined, err: error },
      'invalid configuration',
    );
    process.exit(1);
  }
  const log = createLogger({ service: 'calendly-sim', level: config.LOG_LEVEL });
  start(config, log).then(
    (app) => exitOnSignals(app.stop, log),
    (error: unknown) => {
      log.fatal({ err: error }, 'start failed');
      process.exit(1);
    },
  );
}
