/**
 * fleet's API on the scheduler's HTTP listener (`--http-listen`): three lines of its route
 * table under `/fleet/v1/`. The listener has already identified the caller (bearer token,
 * session cookie or client certificate) and refused cross-site writes; `call.gated` runs each
 * handler behind the API's gate as the gRPC method it stands for.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ApiCore } from '../api/core.js';
import type { HttpCall, HttpRoute } from '../http/router.js';
import { FLEET_BODY_MAX_BYTES, FleetApi } from './router.js';
import type { FleetAnswer } from './reads.js';

/** Where fleet's API lives on a listener (fleetctl appends `fleet/v1/` to its endpoint). */
export const FLEET_PREFIX = '/fleet/v1/';

/** The routes of fleet's API over `core`, for the HTTP listener's route table. */
export function fleetRoutes(core: ApiCore, logger: Logger): HttpRoute[] {
  const api = new FleetApi(core.cluster, logger.child({ component: 'fleet-api' }));
  const handler = async (call: HttpCall): Promise<void> => {
    const method = call.req.method ?? 'GET';
    const body = method === 'PUT' ? (await call.body(FLEET_BODY_MAX_BYTES)).toString('utf8') : '';
    const answer = await api.handle({
      method,
      path: call.url.pathname.slice(FLEET_PREFIX.length),
      query: call.url.searchParams,
      contentTypes: contentTypes(call.req.rawHeaders),
      body,
      gate: (grpcMethod, request, run) => call.gated(grpcMethod, request, run),
    });
    sendAnswer(call.res, answer);
  };
  const path = `${FLEET_PREFIX}*path`;
  return [
    { method: 'GET', path, handler },
    { method: 'PUT', path, handler },
    { method: 'DELETE', path, handler },
  ];
}

/** Every Content-Type header as sent (fleet wants exactly one). */
export function contentTypes(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() === 'content-type') out.push(rawHeaders[i + 1] ?? '');
  }
  return out;
}

/** Sends an answer: its JSON body with its length, or none (201, 204). */
export function sendAnswer(res: ServerResponse, answer: FleetAnswer): void {
  if (answer.body === undefined) {
    res.writeHead(answer.status);
    res.end();
    return;
  }
  res.writeHead(answer.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(answer.body),
  });
  res.end(answer.body);
}
