import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tracingRequested } from './tracing';

describe('tracingRequested', () => {
  it('is on only when an OTLP endpoint is set and nothing standard turns it off', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' })).toBe(
      false,
    );
  });
});

describe('startTracing in a fresh process', () => {
  // What a service's tracing.ts does first thing (the built module, as services load it), then
  // which OpenTelemetry modules got loaded.
  const entry = JSON.stringify(join(__dirname, '..', 'dist', 'tracing.js'));
  const loadedModules = (env: Record<string, string>) => {
    const script = `
      const started = require(${entry}).startTracing('probe');
      const loaded = Object.keys(require.cache).filter((path) => path.includes('@opentelemetry'));
      process.stdout.write(JSON.stringify({ started, sdk: loaded.filter((p) => /sdk-node|sdk-trace|instrumentation-/.test(p)).length }));
      require(${entry}).stopTracing().then(() => process.exit(0));
    `;
    const output = execFileSync(process.execPath, ['-e', script], {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
    });
    return JSON.parse(output) as { started: boolean; sdk: number };
  };

  it('loads none of the SDK when no OTLP endpoint is configured, so tracing off costs nothing', () => {
    expect(loadedModules({})).toEqual({ started: false, sdk: 0 });
  });

  it('starts the SDK and its instrumentations when an endpoint is configured', () => {
    const { started, sdk } = loadedModules({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' });
    expect(started).toBe(true);
    expect(sdk).toBeGreaterThan(0);
  });
});
