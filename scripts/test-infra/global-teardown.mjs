export default async function globalTeardown() {
  for (const stop of (globalThis.__calsyncInfraStops ?? []).reverse()) await stop();
}
