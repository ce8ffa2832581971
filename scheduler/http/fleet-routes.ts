/**
 * fleet's API on the scheduler's HTTP listener (`--http-listen`): three lines of its route
 * table under `/fleet/v1/`. The listener has already identified the caller (bearer token,
 * session cookie or client certificate) and refused cross-site writes; `call.gated` runs each
 * handler behind the API's gate as the gRPC method it stands for.
 */
import type { Logger } from 'pino';
import type { ApiCore } from '../api/core.js';
import {
  contentTypes,
  FLEET_BODY_MAX_BYTES,
  FLEET_PREFIX,
  FleetApi,
  sendAnswer,
} from '../fleet-api/index.js';
import type { HttpCall, HttpRoute } from './router.js';

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
