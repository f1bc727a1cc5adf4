import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { listen } from './listen';
import type { Logger } from './logger';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A Prometheus registry for one service, with process metrics and the service label. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Latency buckets (seconds) for calls that should answer within milliseconds. */
export const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Serves `GET /metrics` for Prometheus on its own port (gRPC services have no HTTP server), and
 * `GET /healthz` (the process serves) and `GET /readyz` (`ready()`) for the kubelet, whose
 * gRPC probes cannot speak mutual TLS.
 */
export async function startMetricsServer(options: {
  registry: Registry;
  port: number;
  host?: string;
  log: Logger;
  ready?: () => boolean;
}): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      const ok = req.url === '/healthz' || (options.ready?.() ?? true);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
      return;
    }
    if (req.method === 'GET' && req.url === '/metrics') {
      options.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': options.registry.contentType });
          res.end(body);
        })
        .catch((error: unknown) => {
          options.log.error({ err: error }, 'metrics collection failed');
          res.writeHead(500).end();
        });
      return;
    }
    res.writeHead(404).end();
  });
  const port = await listen(server, options.port, options.host ?? '0.0.0.0');
  options.log.info({ port }, 'metrics listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
