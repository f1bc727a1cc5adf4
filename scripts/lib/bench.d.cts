export function printBenchHeader(rootDir: string): { command: string; machine: string; loadAverageBefore: number[] };
export function createCleanup(say?: (message: string) => void): {
  add(stop: () => unknown): void;
  run(): Promise<void>;
};
