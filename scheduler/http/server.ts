/**
 * The scheduler replica's one HTTP listener (`--http-listen HOST:PORT`, Nomad's 4646): the
 * JSON API at `/api/v1/` (docs/http-api.md) with its event stream, `/metrics`, `/healthz`
 * and `/readyz`, and whatever other routes are added to {@link routeTable} (the console at
 * `/ui/`, fleet's API at `/fleet/v1/`). Every request passes one door (access.ts) before its
 * handler: the caller is identified once, by the API's `--auth-policy`; writes from another
 * site are refused. Bodies, answers, streams and time are bounded.
 *
 * @example
 *   const http = await startHttpServer({ listen: '127.0.0.1:4646', core, logger, ops });
 *   // curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:4646/api/v1/units
 *   await http.close();
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { serveOps, type OpsEndpoints } from '../../daemon/metrics-server.js';
import type { ServerTls } from '../../daemon/tls.js';
import type { ApiCore } from '../api/core.js';
import { isLoopback } from '../api/server.js';
import { API_MAX_RECEIVE_BYTES } from '../api/limits.js';
import { dispatch } from './dispatch.js';
import { consoleRoutes } from './console-routes.js';
import { Router, type HttpRoute } from './router.js';
import { SessionStore, type SessionOptions } from './sessions.js';
import { sessionRoutes } from './session-routes.js';
import { serviceReads } from './service-reads.js';
import { unitReads } from './unit-reads.js';
import { unitActions } from './unit-actions.js';
import { streamEvents } from './events-stream.js';
import { streamLogs } from './logs-stream.js';
import { SSE_MAX_BUFFERED_BYTES } from './sse.js';
import { fleetRoutes } from './fleet-routes.js';
import type { HttpDeps } from './deps.js';

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  /** The API's shared state and gate, the gRPC server's own (api/core.ts). */
  readonly core: ApiCore;
  readonly logger: Logger;
  /** Serve HTTPS with the API's certificate (mutual TLS when it has a client CA). Default: HTTP. */
  readonly tls?: ServerTls;
  /** `/metrics`, `/healthz`, `/readyz`. Default: `/readyz` always ready, no `/metrics`. */
  readonly ops?: OpsEndpoints;
  /** Routes served after the built-in ones (tests; the daemon adds its own in routeTable). */
  readonly routes?: readonly HttpRoute[];
  /** The largest request body read. Default: the gRPC API's, {@link API_MAX_RECEIVE_BYTES}. */
  readonly maxBodyBytes?: number;
  /** A non-streaming answer not sent within this is cut off with 504. Default 30,000 ms. */
  readonly deadlineMs?: number;
  /** The most streams (events, followed logs) open at once; more get 429. Default 256. */
  readonly maxStreams?: number;
  /** The event stream's heartbeat, a comment line. Default 15,000 ms. */
  readonly heartbeatMs?: number;
  /**
   * Bytes a stream may let wait unread in its socket's buffer before its client is cut (it
   * resumes from its last id). Default SSE_MAX_BUFFERED_BYTES (8 MiB).
   */
  readonly streamBufferBytes?: number;
  readonly sessions?: SessionOptions;
}

/** A listening HTTP server. */
export interface HttpServer {
  /** The bound host:port. */
  readonly address: string;
  /** `http://host:port` or `https://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/** The route table: one line per route, matched in order. Add new routes here. */
export function routeTable(d: HttpDeps): HttpRoute[] {
  const reads = unitReads(d);
  const services = serviceReads(d);
  const acts = unitActions(d);
  const session = sessionRoutes(d);
  const ops = (req: IncomingMessage, res: ServerResponse): Promise<void> =>
    serveOps(d.ops, req, res);
  return [
    { method: 'GET', path: '/healthz', access: 'public', handler: (c) => ops(c.req, c.res) },
    { method: 'GET', path: '/readyz', access: 'public', handler: (c) => ops(c.req, c.res) },
    { method: 'GET', path: '/metrics', access: 'public', handler: (c) => ops(c.req, c.res) },
    { method: 'POST', path: '/api/v1/session', access: 'public', handler: session.login },
    { method: 'GET', path: '/api/v1/session', handler: session.whoami },
    { method: 'DELETE', path: '/api/v1/session', access: 'public', handler: session.logout },
    { method: 'GET', path: '/api/v1/units', handler: reads.listUnits },
    { method: 'POST', path: '/api/v1/units', handler: acts.submit },
    { method: 'POST', path: '/api/v1/plan', handler: acts.plan },
    { method: 'POST', path: '/api/v1/actions/:action', handler: acts.bulk },
    { method: 'GET', path: '/api/v1/units/:name', handler: reads.getUnit },
    { method: 'DELETE', path: '/api/v1/units/:name', handler: acts.destroy },
    { method: 'GET', path: '/api/v1/units/:name/file', handler: reads.unitFile },
    { method: 'GET', path: '/api/v1/units/:name/logs', stream: true, handler: streamLogs(d) },
    { method: 'POST', path: '/api/v1/units/:name/:action', handler: acts.unit },
    { method: 'GET', path: '/api/v1/machines', handler: reads.listMachines },
    { method: 'POST', path: '/api/v1/machines/:machine/:action', handler: acts.machine },
    { method: 'GET', path: '/api/v1/rollouts/:name', handler: reads.getRollout },
    { method: 'POST', path: '/api/v1/rollouts/:name/rollback', handler: acts.rollback },
    { method: 'GET', path: '/api/v1/schedulers', handler: reads.listSchedulers },
    { method: 'GET', path: '/api/v1/services', handler: services.listServices },
    { method: 'GET', path: '/api/v1/services/:name/endpoints', handler: services.listEndpoints },
    { method: 'GET', path: '/api/v1/events', stream: true, handler: streamEvents(d) },
    ...consoleRoutes(),
    ...fleetRoutes(d.core, d.logger),
  ];
}

/** Starts serving; resolves once bound, rejects (nothing left open) when it cannot. */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const logger = opts.logger.child({ component: 'http' });
  const { core } = opts;
  if (core.policy?.hasTokens === true && opts.tls === undefined && !isLoopback(opts.listen)) {
    throw new Error(
      `the auth policy has tokens, which must not cross the network in plaintext: serve --http-listen over TLS (--tls-cert-file, --tls-key-file) or on a loopback address, not ${opts.listen}`,
    );
  }
  const deps: HttpDeps = {
    core,
    sessions: new SessionStore(opts.sessions),
    logger,
    ops: opts.ops ?? { registry: undefined, readiness: () => ({ ready: true, reasons: [] }) },
    streams: new Set(),
    maxStreams: opts.maxStreams ?? 256,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    streamBufferBytes: opts.streamBufferBytes ?? SSE_MAX_BUFFERED_BYTES,
  };
  const router = new Router([...routeTable(deps), ...(opts.routes ?? [])]);
  const settings = {
    router,
    deps,
    tls: opts.tls !== undefined,
    loopback: isLoopback(opts.listen),
    maxBodyBytes: opts.maxBodyBytes ?? API_MAX_RECEIVE_BYTES,
    deadlineMs: opts.deadlineMs ?? 30_000,
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void =>
    dispatch(settings, req, res);
  const server =
    opts.tls === undefined
      ? createHttpServer(onRequest)
      : createHttpsServer(
          {
            cert: opts.tls.cert,
            key: opts.tls.key,
            ...(opts.tls.clientCa === undefined
              ? {}
              : { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: true }),
          },
          onRequest,
        );
  // Slow or idle clients never hold a socket for long; streams send heartbeats.
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // streams are long; each request's own deadline bounds the rest
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  server.maxConnections = 4_096;
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
  const url = `${opts.tls === undefined ? 'http' : 'https'}://${address}`;
  logger.info(
    { address: url, authorization: core.gate.judges ? 'policy' : 'off' },
    'HTTP listener listening',
  );
  let closing: Promise<void> | undefined;
  return {
    address,
    url,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const end of [...deps.streams]) end();
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
