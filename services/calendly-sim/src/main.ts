import { createLogger, loadConfig, runService, type Logger } from '@calsync/service-kit';
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
    stateFile: config.SIM_STATE_FILE,
    settings: settingsFromConfig(config),
    log,
  });
  log.info({ httpPort: simulator.port, url: simulator.url }, 'ready');
  return { stop: simulator.stop, ports: { http: simulator.port } };
}

if (require.main === module) {
  runService({
    service: 'calendly-sim',
    loadConfig: () => loadConfig(configSchema),
    start: (config, { log }) => start(config, log),
  });
}
