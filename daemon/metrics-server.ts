/**
 * The daemons' HTTP side door (`--metrics-listen HOST:PORT`): Prometheus metrics at
 * `/metrics`, liveness at `/healthz` (200 while the process serves at all) and readiness at
 * `/readyz` (200 when the daemon's own check says ready, else 503 with the reasons, one per
 * line). Only GET and HEAD; bodies are bounded by the registry's size; every response closes
 * within {@link SCRAPE_TIMEOUT_MS}.
 *
 * @example
 *   const http = await startMetricsServer({ listen: '127.0.0.1:9470', registry, readiness });
 *   // curl http://127.0.0.1:9470/readyz -> "ready" or "not ready: cluster cache not synced"
 *   await http.close();
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { UsageError } from './options.js';

/** A daemon's readiness: ready, or the reasons it is not (each a short sentence). */
export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  readonly registry: Registry;
  /** Asked on every `/readyz` (and by the gRPC health service); must be cheap. */
  readiness(): Readiness;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** The bound host:port. */
  readonly address: string;
  close(): Promise<void>;
}

/** A scrape that takes longer than this is cut off with 503. */
export const SCRAPE_TIMEOUT_MS = 10_000;

/** Checks a `--metrics-listen` value: `none` is undefined; HOST:PORT as given. */
export function parseMetricsListen(
  value: string | undefined,
  flag = 'metrics-listen',
): string | undefined {
  if (value === undefined || value === 'none' || value === '') return undefined;
  if (!/^.+:\d+$/.test(value)) {
    throw new UsageError(`--${flag}=${value}: expected HOST:PORT (e.g. 127.0.0.1:9470)`);
  }
  return value;
}

/** Starts serving; resolves once bound, rejects (nothing left open) when it cannot bind. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    res.setTimeout(SCRAPE_TIMEOUT_MS, () => {
      if (!res.headersSent) reply(res, 503, 'timed out\n');
      res.destroy();
    });
    serveOps(opts, req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, `error: ${String(err).slice(0, 200)}\n`);
    });
  });
  server.requestTimeout = SCRAPE_TIMEOUT_MS;
  server.headersTimeout = SCRAPE_TIMEOUT_MS;
  const colon = opts.listen.lastIndexOf(':');
  const host = opts.listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(opts.listen.slice(colon + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
  const address = `${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What {@link serveOps} answers from; without a registry `/metrics` is 404. */
export interface OpsEndpoints {
  readonly registry?: Registry | undefined;
  readiness(): Readiness;
}

/**
 * Answers `/metrics`, `/healthz` and `/readyz` (and 404 for any other path): this server's
 * routes, which the scheduler's HTTP listener serves too (scheduler/http/).
 */
export async function serveOps(
  opts: OpsEndpoints,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    reply(res, 405, 'only GET and HEAD\n');
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/metrics': {
      if (opts.registry === undefined) {
        reply(res, 404, 'metrics are not enabled on this daemon\n');
        return;
      }
      const body = await opts.registry.metrics();
      reply(res, 200, body, opts.registry.contentType);
      return;
    }
    case '/healthz':
      reply(res, 200, 'ok\n');
      return;
    case '/readyz': {
      const r = opts.readiness();
      if (r.ready) reply(res, 200, 'ready\n');
      else reply(res, 503, `not ready: ${r.reasons.join('\n')}\n`);
      return;
    }
    default:
      reply(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}

function reply(res: ServerResponse, code: number, body: string, type = 'text/plain'): void {
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
