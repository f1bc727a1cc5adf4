import { createLogger, runService, type Logger } from '@calsync/service-kit';
import { loadSimConfig, settingsFromConfig, type SimConfig } from './config';
import { startSimulator } from './simulator';

export interface SimApp {
  stop(): Promise<void>;
  ports: { http: number };
}

/** Starts the simulator as the process does; logs `ready` with its port. */
export async function start(config: SimConfig, options: { log?: Logger } = {}): Promise<SimApp> {
  const log = options.log ?? createLogger({ service: 'calendly-sim', level: config.LOG_LEVEL });
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
    loadConfig: loadSimConfig,
    start,
  });
}
