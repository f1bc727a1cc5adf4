export { startSimulator, type Simulator, type StartOptions } from './simulator';
export { defaultSettings, type SimulatorSettings } from './settings/settings';
