/**
 * fleet's API v1 (`/fleet/v1/`): what fleetctl v1.0.0 and tools written for fleet speak,
 * served over Flotilla's model by the gRPC API's own handlers. See README.md.
 */
import type { Logger } from 'pino';
import type { ApiServer } from '../api/server.js';
import { FleetApi } from './router.js';
import { startFleetSocket, type FleetSocket } from './serve.js';

export { FleetApi, errorBody, type FleetRequest, type FleetGate } from './router.js';
export { FLEET_PREFIX, serveFleet, startFleetSocket, type FleetSocket } from './serve.js';

/** Serves fleet's API over `api`'s handlers and gate on unix socket `path`. */
export function startFleet(path: string, api: ApiServer, logger: Logger): Promise<FleetSocket> {
  const log = logger.child({ component: 'fleet-api' });
  return startFleetSocket(path, new FleetApi(api.cluster, log), api.gate, log);
}
