export * from './infra';
export * from './log-capture';
export * from './process';
export * from './health';
export * from './polling';
export * from './reflection';
export * from './certificates';
export * from './clients';
